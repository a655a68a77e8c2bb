#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

/// Dedicated game servers run declaratively.
#[derive(Parser, Debug)]
#[command(name = "mettaton", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the GameServer CustomResourceDefinition as YAML.
    Crd,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => print!("{}", mettaton::api::crd_yaml()),
    }
}
