//! Hosts: where member processes run and how they are supervised, behind one trait.
//!
//! A [`Host`] spawns a member's command with its output appended to a log file, and hands back
//! a [`HostProcess`] that can be signalled (SIGSTOP/SIGCONT), killed and reaped, and asked
//! whether it exited on its own. Every process it starts dies with the harness. The cluster
//! (`crate::cluster`) decides *when* to start, kill, pause and restart; the host knows *how*.
//! [`LocalHost`] runs processes on this machine; [`ssh::SshHost`] runs them on a remote host
//! over SSH (`--hosts FILE`, parsed by [`hosts_file`]) and brings their logs home with
//! [`Host::collect_logs`].
//!
//! # Local processes die with the harness
//! Every child gets `PR_SET_PDEATHSIG = SIGKILL` (so SIGKILL of the harness kills them too)
//! and its own process group (so a terminal's Ctrl-C reaches only the harness, which heals
//! and stops them itself). Because the death signal fires when the *thread* that forked the
//! child exits, every child is forked by one spawner thread that lives as long as the process.
//! A panic hook ([`install_panic_hook`]) SIGKILLs every live child before the default hook
//! runs.

pub mod hosts_file;
pub mod ssh;

use crate::sut::MemberCommand;
use anyhow::{bail, Context};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// A signal the cluster sends to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGSTOP: pause.
    Stop,
    /// SIGCONT: resume.
    Cont,
}

/// A process started by a [`Host`].
pub trait HostProcess: Send {
    /// The process id (on its host).
    fn pid(&self) -> u32;
    /// Sends `sig`.
    fn signal(&mut self, sig: Signal) -> anyhow::Result<()>;
    /// SIGKILL, then wait for it (a stopped process dies too).
    fn kill(&mut self);
    /// `Some(status)` if it has exited (on its own or killed), without waiting.
    fn exited(&mut self) -> Option<String>;
}

/// Where member processes run. See the module docs.
pub trait Host: Send + Sync {
    /// `local`, or the remote host's name.
    fn name(&self) -> &str;
    /// Starts `cmd` with stdout and stderr appended to `log`; the process dies with the
    /// harness.
    fn spawn(&self, cmd: &MemberCommand, log: &Path) -> anyhow::Result<Box<dyn HostProcess>>;
    /// Makes `log` (as given to `spawn`) readable on this machine (local: it already is).
    fn collect_logs(&self, log: &Path) -> anyhow::Result<()> {
        let _ = log;
        Ok(())
    }
}

/// This machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalHost;

impl Host for LocalHost {
    fn name(&self) -> &str {
        "local"
    }

    fn spawn(&self, mc: &MemberCommand, log: &Path) -> anyhow::Result<Box<dyn HostProcess>> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file handle")?;
        let mut cmd = Command::new(&mc.program);
        cmd.args(&mc.args)
            .envs(mc.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = spawn_guarded(cmd)?;
        Ok(Box::new(LocalProcess { child }))
    }
}

/// A child process of this harness.
pub struct LocalProcess {
    child: Child,
}

impl LocalProcess {
    /// Wraps a child started with [`spawn_guarded`] (hosts with their own pipes).
    pub fn from_child(child: Child) -> LocalProcess {
        LocalProcess { child }
    }
}

impl HostProcess for LocalProcess {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&mut self, sig: Signal) -> anyhow::Result<()> {
        let s = match sig {
            Signal::Stop => libc::SIGSTOP,
            Signal::Cont => libc::SIGCONT,
        };
        // SAFETY: plain kill(2) on our own child's pid, which we have not reaped yet.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, s) };
        if rc != 0 {
            bail!(
                "kill({}, {s}): {}",
                self.child.id(),
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        forget_pid(self.child.id());
    }

    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(st)) => Some(st.to_string()),
            _ => None,
        }
    }
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// The one thread that forks children (see the module docs on PDEATHSIG).
fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("splitbrain-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            // Without this thread no member can start at all; failing to create a thread at
            // start-up is an unrecoverable resource exhaustion.
            .expect("spawning the process-spawner thread");
        Mutex::new(tx)
    })
}

/// Spawns `cmd` on the spawner thread, with the parent-death signal and its own process group.
pub fn spawn_guarded(mut cmd: Command) -> anyhow::Result<Child> {
    // SAFETY: `getpid` is async-signal-safe.
    let parent = unsafe { libc::getpid() };
    unsafe {
        // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) run between fork and exec.
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd.process_group(0);
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .map_err(|_| anyhow::anyhow!("the spawner lock is poisoned"))?
        .send((cmd, tx))
        .map_err(|_| anyhow::anyhow!("the spawner thread is gone"))?;
    let child = rx
        .recv_timeout(Duration::from_secs(10))
        .context("the spawner thread did not answer within 10 s")??;
    live_pids()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(child.id());
    Ok(child)
}

/// Pids of every live member process in this harness, for the panic hook.
fn live_pids() -> &'static Mutex<std::collections::BTreeSet<u32>> {
    static LIVE: OnceLock<Mutex<std::collections::BTreeSet<u32>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
}

pub(crate) fn forget_pid(pid: u32) {
    live_pids()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&pid);
}

/// Installs (once) a panic hook that SIGKILLs every live member before the default hook runs:
/// a panic on any thread must not leave members running until the process exits.
pub fn install_panic_hook() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Ok(pids) = live_pids().try_lock() {
                for &pid in pids.iter() {
                    // SAFETY: kill(2) on a pid we spawned and have not reaped.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                }
            }
            prev(info);
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_process_is_paused_resumed_and_killed_and_its_output_logged() {
        let dir = std::env::temp_dir().join(format!("sb-host-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("p.log");
        let cmd = MemberCommand {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "echo started; exec sleep 30".into()],
            env: vec![],
        };
        let mut p = LocalHost.spawn(&cmd, &log).unwrap();
        assert!(p.exited().is_none());
        p.signal(Signal::Stop).unwrap();
        p.signal(Signal::Cont).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("started")
        {
            assert!(std::time::Instant::now() < deadline, "no output logged");
            std::thread::sleep(Duration::from_millis(20));
        }
        p.kill();
        assert!(p.exited().is_some(), "killed and reaped");
        LocalHost.collect_logs(&log).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
