module mettaton.dev/testgame

go 1.22
