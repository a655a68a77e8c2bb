//! The real `mettaton controller` binary as a child process that a test can
//! kill -9 and start again with the same arguments. Every start appends to one
//! log file in target/reliability/.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::kubeconfig_path;

/// The controller binary: this build's, or `$MTN_CONTROLLER_BIN` (a release
/// build for a soak, or a candidate fix).
pub fn binary() -> PathBuf {
    match std::env::var_os("MTN_CONTROLLER_BIN") {
        Some(bin) if !bin.is_empty() => PathBuf::from(bin),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_mettaton")),
    }
}

pub struct Controller {
    args: Vec<String>,
    pub log: PathBuf,
    child: Option<Child>,
    pub starts: u32,
    pub kills: u32,
}

impl Controller {
    /// Starts `mettaton controller --namespace NS` with `extra` arguments.
    pub fn start(namespace: &str, extra: &[&str]) -> Controller {
        let mut args: Vec<String> =
            ["controller", "--namespace", namespace, "--admin-address", "127.0.0.1:0", "--kubeconfig"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        args.push(kubeconfig_path().display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = crate::setup::log_dir().join(format!("{namespace}-controller.log"));
        let _ = std::fs::remove_file(&log);
        let mut controller = Controller { args, log, child: None, starts: 0, kills: 0 };
        controller.launch();
        controller
    }

    fn launch(&mut self) {
        assert!(self.child.is_none(), "the controller runs already");
        self.starts += 1;
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        std::io::Write::write_all(&mut log, format!("=== start {} of the controller\n", self.starts).as_bytes())
            .unwrap();
        // Killed with the test process, should that die before its Drop.
        let mut cmd = crate::dockerd::tied("KILL", &binary().to_string_lossy());
        cmd.args(&self.args)
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = crate::dockerd::spawn_tied(cmd).expect("the mettaton binary runs");
        self.child = Some(child);
    }

    /// SIGKILL: the process dies wherever it is, without a word.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the controller runs");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the controller had exited on its own ({status}) before the kill:\n{}", self.tail());
        }
        child.kill().unwrap();
        child.wait().unwrap();
        self.kills += 1;
    }

    /// Starts it again with the same arguments.
    pub fn restart(&mut self) {
        self.launch();
    }

    /// Waits `after`, kills it with SIGKILL, and starts it again `down` later.
    pub async fn kill_and_restart(&mut self, after: std::time::Duration, down: std::time::Duration) {
        tokio::time::sleep(after).await;
        self.kill9();
        tokio::time::sleep(down).await;
        self.restart();
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Panics, with its log, when the process exited.
    pub fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("the controller was started");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the controller exited ({status}):\n{}", self.tail());
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the log, for failure messages.
    pub fn tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        format!("--- last lines of {}:\n{}", self.log.display(), lines[lines.len().saturating_sub(40)..].join("\n"))
    }

    /// SIGTERM and wait: how a test that passed stops it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            for _ in 0..200 {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
