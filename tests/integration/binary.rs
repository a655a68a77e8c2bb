//! The `mettaton` binary as users run it: `mettaton crd` installs with kubectl,
//! `mettaton controller` reconciles, and kubectl's own `wait`, `get` and
//! `describe` work on GameServers.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use kube::api::PostParams;
use mettaton::api::GameServer;

use crate::support::{TestNamespace, ensure_crd, eventually, kubeconfig_path};

fn kubectl() -> Command {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/controlplane/bin/kubectl");
    let mut cmd = Command::new(bin);
    cmd.arg("--kubeconfig").arg(kubeconfig_path());
    cmd
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Stops the controller process when the test ends, whatever happens.
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reconciles_and_kubectl_wait_get_describe_work() {
    // `mettaton crd` is what kubectl installs (server-side apply, idempotent).
    let crd = Command::new(env!("CARGO_BIN_EXE_mettaton")).arg("crd").output().unwrap();
    assert!(crd.status.success());
    let mut apply = kubectl()
        .args(["apply", "--server-side", "--field-manager=mettaton-tests", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(apply.stdin.as_mut().unwrap(), &crd.stdout).unwrap();
    assert!(apply.wait_with_output().unwrap().status.success());
    ensure_crd().await;

    let ns = TestNamespace::new("binary").await;
    let log = std::env::temp_dir().join(format!("{}-controller.log", ns.name));
    let mut controller = Process(
        Command::new(env!("CARGO_BIN_EXE_mettaton"))
            .args(["controller", "--namespace", &ns.name, "--admin-address", "127.0.0.1:0", "--kubeconfig"])
            .arg(kubeconfig_path())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );

    let gs: GameServer = serde_yaml::from_str(
        "apiVersion: mettaton.dev/v1alpha1\nkind: GameServer\nmetadata:\n  name: cli\nspec:\n  image: mettaton.test/game:1\n  ports:\n  - name: game\n    containerPort: 7777\n",
    )
    .unwrap();
    ns.api::<GameServer>().create(&PostParams::default(), &gs).await.unwrap();

    let wait = kubectl()
        .args(["-n", &ns.name, "wait", "--for=condition=Ready", "gameserver/cli", "--timeout=60s"])
        .output()
        .unwrap();
    assert!(
        wait.status.success(),
        "kubectl wait: {}\ncontroller log:\n{}",
        String::from_utf8_lossy(&wait.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // The printer columns and the short name.
    let table = run(kubectl().args(["-n", &ns.name, "get", "mgs"]));
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATE", "PHASE", "ADDRESS", "READY", "PLAYERS", "AGE"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["cli", "Running", "Running"], "{table}");
    assert!(row[3].starts_with("127.0.0."), "address column: {table}");
    assert_eq!(row[4], "True");

    // Events show in describe.
    let described = eventually("the Started event in kubectl describe", Duration::from_secs(30), || async {
        let out = run(kubectl().args(["-n", &ns.name, "describe", "gameserver", "cli"]));
        if out.contains("Started") { Ok(out) } else { Err(out) }
    })
    .await;
    assert!(described.contains("ready for players at 127.0.0."), "{described}");

    // SIGTERM stops the controller cleanly.
    let pid = controller.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = eventually("the controller to exit", Duration::from_secs(30), || {
        let exited = controller.0.try_wait().unwrap();
        async move { exited.ok_or("still running") }
    })
    .await;
    assert!(status.success(), "exit status {status:?}");
    let _ = std::fs::remove_file(log);
}
