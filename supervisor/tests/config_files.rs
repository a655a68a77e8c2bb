//! `run --config-files`: the files are edited before the game starts, on
//! every start, and one that cannot be edited does not stop the game.

use std::process::Stdio;

mod common;

use common::*;

#[test]
fn config_files_are_edited_before_the_game_starts_and_a_bad_one_is_said() {
    let dir = Dir::new("config-files");
    let props = dir.path("server.properties");
    let broken = dir.path("broken.json");
    std::fs::write(&props, "#comment\nserver-port=25565\n").unwrap();
    std::fs::write(&broken, "{").unwrap();
    let json = format!(
        r#"[{{"path": "{}", "parser": "properties", "edits": [{{"key": "server-port", "value": "25570"}}, {{"key": "motd", "value": "hi"}}]}},
            {{"path": "{}", "parser": "json", "edits": [{{"key": "a", "value": "1"}}]}}]"#,
        props.display(),
        broken.display()
    );
    for _ in 0..2 {
        let out =
            finish(supervise(&dir, &["--config-files", &json], &format!("cat {}", props.display()), Stdio::null()));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "#comment\nserver-port=25570\nmotd=hi\n");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(&format!("mettaton-supervisor: config: {}: 2 edits\n", props.display())), "{stderr}");
        assert!(stderr.contains(&format!("mettaton-supervisor: config: {}: not JSON: ", broken.display())), "{stderr}");
    }
    assert_eq!(std::fs::read_to_string(&broken).unwrap(), "{");
}
