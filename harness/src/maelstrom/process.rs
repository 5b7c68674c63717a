//! Maelstrom node processes: a [`Host`] whose children talk through pipes to the router.
//!
//! Each process gets stdin and stdout as pipes (a writer thread drains the node's queue into
//! stdin, a reader thread routes every stdout line) and stderr appended to `nodes/<id>.log`.
//! The guarantees of `crate::host` hold (the same `spawn_guarded`: PDEATHSIG, own process
//! group, killed by the panic hook); the process runs at nice 10 so that a node that
//! busy-loops cannot starve the harness on a small machine. Pause is SIGSTOP of the node
//! process itself (the command is executed directly, never through a shell); kill is SIGKILL,
//! after which the router drops messages to it; a restart is a fresh process that gets a fresh
//! `init` (Maelstrom nodes keep no disk state).

use super::router::{read_loop, write_loop, Router};
use crate::host::{spawn_guarded, Host, HostProcess, LocalProcess, Signal};
use crate::sut::MemberCommand;
use anyhow::Context;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// The environment variable that tells the host which node a command starts (set by the
/// target's `command`; nodes may read it too).
pub const NODE_ID_ENV: &str = "SPLITBRAIN_NODE_ID";

/// The niceness of node processes.
pub const NICE: i32 = 10;

/// Local processes wired to a router.
pub struct MaelstromHost {
    pub router: Router,
}

impl Host for MaelstromHost {
    fn name(&self) -> &str {
        "local"
    }

    fn spawn(&self, mc: &MemberCommand, log: &Path) -> anyhow::Result<Box<dyn HostProcess>> {
        let id = mc
            .env
            .iter()
            .find(|(k, _)| k == NODE_ID_ENV)
            .map(|(_, v)| v.clone())
            .with_context(|| {
                format!(
                    "the command of {} names no node ({NODE_ID_ENV})",
                    log.display()
                )
            })?;
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut cmd = Command::new(&mc.program);
        cmd.args(&mc.args)
            .envs(mc.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err);
        // SAFETY: setpriority(2) is a plain system call, async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setpriority(libc::PRIO_PROCESS as _, 0, NICE);
                Ok(())
            });
        }
        // The cluster adds which member and program.
        let mut child = spawn_guarded(cmd)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let mut p = LocalProcess::from_child(child);
            p.kill();
            anyhow::bail!("starting {id}: no stdin/stdout pipes");
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(self.router.queue());
        let incarnation = self.router.attach(&id, tx, log);
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new().name(name).spawn(f)
        };
        let threads = spawn(
            format!("{id}-stdin"),
            Box::new(move || write_loop(rx, stdin)),
        )
        .and_then(|_| {
            let r = self.router.clone();
            let id2 = id.clone();
            spawn(
                format!("{id}-stdout"),
                Box::new(move || read_loop(r, id2, incarnation, stdout)),
            )
        });
        let mut p = LocalProcess::from_child(child);
        if let Err(e) = threads {
            self.router.detach(&id, incarnation);
            p.kill();
            anyhow::bail!("starting {id}: cannot start its I/O threads: {e}");
        }
        Ok(Box::new(NodeProcess {
            inner: p,
            router: self.router.clone(),
            id,
            incarnation,
        }))
    }
}

/// A node process; killing it detaches it from the router first.
struct NodeProcess {
    inner: LocalProcess,
    router: Router,
    id: String,
    incarnation: u64,
}

impl HostProcess for NodeProcess {
    fn pid(&self) -> u32 {
        self.inner.pid()
    }
    fn signal(&mut self, sig: Signal) -> anyhow::Result<()> {
        self.inner.signal(sig)
    }
    fn kill(&mut self) {
        self.router.detach(&self.id, self.incarnation);
        self.inner.kill();
    }
    fn exited(&mut self) -> Option<String> {
        self.inner.exited()
    }
}
