//! Remote hosts over SSH (`--hosts FILE`): each member runs on a machine of its own, started,
//! signalled, killed and restarted over SSH, with its log and a listing of its data dir
//! brought home at the end.
//!
//! # Why the system `ssh`, multiplexed, rather than an SSH crate
//! Sessions are OpenSSH client processes sharing one **ControlMaster** connection per host
//! (`ssh -M -N -o ControlPath=…`, then `ssh -o ControlMaster=no … CMD` per session): one TCP
//! connection and one authentication per host, a new session in a few milliseconds. We drive
//! the binary ourselves instead of through the `openssh` crate (which does the same with
//! tokio) or `russh` (a pure-Rust protocol stack) because:
//! 1. [`crate::host::Host`] is synchronous and is called from inside the run's tokio runtime
//!    (the cluster starts members from async code); `openssh`'s API is async-only and
//!    nesting a `block_on` there panics, while a `std::process` child fits as it is;
//! 2. every `ssh` process is forked by the harness's spawner with `PR_SET_PDEATHSIG`
//!    (`crate::host::spawn_guarded`), so the sessions, and with them the members, die with
//!    the harness even on SIGKILL — the same guarantee local members have;
//! 3. the user's `~/.ssh/config`, agent and `known_hosts` work exactly as with `ssh`, which is
//!    what people pointing a test at their machines expect (Jepsen's behaviour too).
//!
//! # The supervisor
//! A member runs under a small `sh` script on its host (the session's command): it starts the
//! member in the background (its output appended to its log), and a reader of control lines
//! from the session's stdin, writes a pid file `WORKDIR/pids/<id>.pid` (member, supervisor,
//! reader, and the run's directory), prints `pid N`. The control lines:
//! `STOP`/`CONT` send SIGSTOP/SIGCONT (answered `ok`/`err`), `KILL` sends SIGKILL. When stdin
//! ends — the harness closed the session, died, or the connection was lost — it SIGKILLs the
//! member. When the member exits it prints `exit STATUS` and removes the pid file. SIGHUP and
//! SIGPIPE are ignored so that a lost connection cannot kill the script before the member.
//!
//! # On each host
//! Everything lives under the host's working directory (`workdir`, default `~/splitbrain`):
//! `bin/splitbrain` (the uploaded harness binary, for the splitbrain target: the member runs
//! as `bin/splitbrain node …`; re-sent only if its sha256 differs), `pids/`, and
//! `runs/<run>/` (the member's `<id>.log` and `data/<id>`), which is kept after the run. Link
//! faults are the nftables table `inet splitbrain` (`crate::net::remote`). At the start of a
//! run, [`SshHost::connect`] kills processes left by an earlier run (from its pid files, if
//! their command line still names that run's directory) and deletes a leftover table.
//! One run per host at a time.

use super::hosts_file::HostEntry;
use super::{forget_pid, spawn_guarded, Host, HostProcess, Signal};
use crate::sut::MemberCommand;
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::net::{Ipv4Addr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How to reach the hosts (`--ssh-key`, `--ssh-strict-host-keys`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SshOptions {
    /// A private key for every host without a `key` of its own.
    pub key: Option<PathBuf>,
    /// Check host keys against `known_hosts` (`yes`), or accept any and record none (`no`).
    pub strict_host_keys: bool,
    /// Connecting and authenticating one host.
    pub connect_timeout: Duration,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            key: None,
            strict_host_keys: true,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// What a run needs from its hosts, decided before connecting.
#[derive(Debug, Clone, Default)]
pub struct Prepare {
    /// The run's directory name on the hosts (`runs/<run>`).
    pub run: String,
    /// Link faults will run: every host must have a working `nft` (as root).
    pub needs_nft: bool,
    /// Local programs to upload to `bin/` (the harness itself, for the splitbrain target).
    pub upload: Vec<PathBuf>,
    /// The local directory for the ssh processes' own messages (`nodes/`).
    pub local_dir: PathBuf,
}

/// What [`SshHost::connect`] found and removed on a host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Pids of processes of an earlier run, killed.
    pub processes: Vec<u32>,
    /// True if a leftover `inet splitbrain` table was deleted.
    pub table: bool,
}

/// One remote machine, connected (a ControlMaster process) and prepared for a run.
pub struct SshHost {
    entry: HostEntry,
    opts: SshOptions,
    label: String,
    control: PathBuf,
    master: Mutex<Option<Child>>,
    master_log: PathBuf,
    /// Absolute working directory on the host.
    workdir: String,
    /// `workdir/runs/<run>`.
    run_dir: String,
    local_dir: PathBuf,
    /// Local program → its path on the host.
    uploads: BTreeMap<PathBuf, String>,
    /// What was cleaned up when connecting.
    pub leftovers: Leftovers,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Quotes `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The supervisor script for one member (see the module docs). Pure, for tests.
pub fn supervisor_script(
    run_dir: &str,
    id: &str,
    pid_file: &str,
    tag: &str,
    cmd: &[String],
) -> String {
    let log = sh_quote(&format!("{run_dir}/{id}.log"));
    let pid_file = sh_quote(pid_file);
    let cmd: Vec<String> = cmd.iter().map(|a| sh_quote(a)).collect();
    format!(
        r#"trap '' HUP PIPE
exec 3<&0 </dev/null
cd {rd} || exit 126
echo "[splitbrain-ssh] member {id} on $(hostname) net $(readlink /proc/$$/ns/net) at $(date -u +%FT%TZ)" >> {log}
{cmd} 3<&- >> {log} 2>&1 &
pid=$!
( while :; do
    if ! read -r c <&3; then kill -9 $pid 2>/dev/null; exit 0; fi
    case "$c" in
      STOP) if kill -STOP $pid; then echo ok; else echo err; fi ;;
      CONT) if kill -CONT $pid; then echo ok; else echo err; fi ;;
      KILL) kill -9 $pid 2>/dev/null; exit 0 ;;
    esac
  done ) &
ctl=$!
echo "$pid $$ $ctl {tag}" > {pid_file}
echo "pid $pid"
wait $pid
st=$?
kill $ctl 2>/dev/null
rm -f {pid_file}
echo "exit $st"
"#,
        rd = sh_quote(run_dir),
        tag = sh_quote(tag),
        cmd = cmd.join(" "),
    )
}

/// The preparation script: working directory, leftovers of earlier runs, the nft check.
fn prepare_script(workdir: &str, run: &str, nft: &str, needs_nft: bool) -> String {
    let wd = if workdir.starts_with('/') || workdir.starts_with('~') {
        workdir.replacen('~', "$HOME", 1)
    } else {
        format!("$HOME/{workdir}")
    };
    format!(
        r#"PATH="$PATH:/usr/sbin:/sbin"
mkdir -p "{wd}" || exit 10
cd "{wd}" || exit 10
mkdir -p bin pids runs/{run} || exit 10
echo "workdir $(pwd)"
for f in pids/*.pid; do
  [ -e "$f" ] || continue
  read -r mpid spid cpid tag < "$f"
  for p in $mpid $spid $cpid; do
    if [ -r /proc/$p/cmdline ] && tr '\0' ' ' < /proc/$p/cmdline | grep -qF -- "$tag"; then
      kill -9 $p 2>/dev/null && echo "leftover-process $p"
    fi
  done
  rm -f "$f"
done
if command -v {nft} >/dev/null 2>&1; then
  if {nft} list table inet splitbrain >/dev/null 2>&1; then
    {nft} delete table inet splitbrain && echo leftover-table
  fi
  {check}
else
  echo "nft-missing"
  {missing}
fi
"#,
        run = sh_quote(run),
        nft = sh_quote(nft),
        check = if needs_nft {
            format!("{} add table inet splitbrain || exit 12", sh_quote(nft))
        } else {
            ":".into()
        },
        missing = if needs_nft { "exit 11" } else { ":" },
    )
}

impl SshHost {
    /// Connects to `entry` (a ControlMaster), prepares its working directory, removes what an
    /// earlier run left there, checks nft if link faults will run, and uploads programs.
    /// Errors name the host and what failed.
    pub fn connect(entry: &HostEntry, opts: &SshOptions, prep: &Prepare) -> anyhow::Result<Self> {
        let label = entry.label();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let control =
            std::env::temp_dir().join(format!("sb-ssh-{}-{seq}.sock", std::process::id()));
        let master_log = prep
            .local_dir
            .join(format!("ssh-{}.log", label.replace(['/', '[', ']'], "_")));
        let mut me = SshHost {
            entry: entry.clone(),
            opts: opts.clone(),
            label: label.clone(),
            control,
            master: Mutex::new(None),
            master_log,
            workdir: String::new(),
            run_dir: String::new(),
            local_dir: prep.local_dir.clone(),
            uploads: BTreeMap::new(),
            leftovers: Leftovers::default(),
        };
        me.start_master()?;
        let nft = entry.nft.clone().unwrap_or_else(|| "nft".into());
        let script = prepare_script(&entry.workdir, &prep.run, &nft, prep.needs_nft);
        let (code, out, err) = me.run_raw(&script, None, Duration::from_secs(30))?;
        for l in out.lines() {
            if let Some(w) = l.strip_prefix("workdir ") {
                me.workdir = w.to_string();
            } else if let Some(p) = l.strip_prefix("leftover-process ") {
                me.leftovers.processes.extend(p.trim().parse::<u32>().ok());
            } else if l == "leftover-table" {
                me.leftovers.table = true;
            }
        }
        match code {
            Some(0) => {}
            Some(10) => bail!(
                "host {label}: cannot create the working directory {:?}: {}",
                entry.workdir,
                err.trim()
            ),
            Some(11) => bail!(
                "host {label}: `{nft}` not found there; partition and loss faults need nftables on every host (apt-get install nftables), or run with --nemesis kill,pause"
            ),
            Some(12) => bail!(
                "host {label}: `{nft} add table inet splitbrain` failed (nftables needs root there): {}",
                err.trim()
            ),
            other => bail!(
                "host {label}: preparing the working directory failed ({}): {}",
                other.map_or("killed".to_string(), |c| format!("exit {c}")),
                err.trim()
            ),
        }
        if me.workdir.is_empty() {
            bail!("host {label}: the preparation script did not print its working directory");
        }
        me.run_dir = format!("{}/runs/{}", me.workdir, prep.run);
        if !me.leftovers.processes.is_empty() || me.leftovers.table {
            tracing::info!(host = %label, leftovers = ?me.leftovers, "removed what an earlier run left");
        }
        for p in &prep.upload {
            let remote = me.upload(p)?;
            me.uploads.insert(p.clone(), remote);
        }
        Ok(me)
    }

    /// `user@host:port`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The member's data directory on the host.
    pub fn data_dir(&self, id: &str) -> PathBuf {
        PathBuf::from(format!("{}/data/{id}", self.run_dir))
    }

    /// The run's directory on the host.
    pub fn run_dir(&self) -> &str {
        &self.run_dir
    }

    fn base_args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            format!("ControlPath={}", self.control.display()),
            "-o".into(),
            format!(
                "ConnectTimeout={}",
                self.opts.connect_timeout.as_secs().max(1)
            ),
            "-o".into(),
            "ServerAliveInterval=2".into(),
            "-o".into(),
            "ServerAliveCountMax=3".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
            "-p".into(),
            self.entry.port.to_string(),
        ];
        if self.opts.strict_host_keys {
            a.extend(["-o".into(), "StrictHostKeyChecking=yes".into()]);
        } else {
            a.extend([
                "-o".into(),
                "StrictHostKeyChecking=no".into(),
                "-o".into(),
                "UserKnownHostsFile=/dev/null".into(),
            ]);
        }
        if let Some(k) = self.entry.key.as_ref().or(self.opts.key.as_ref()) {
            a.extend([
                "-i".into(),
                k.display().to_string(),
                "-o".into(),
                "IdentitiesOnly=yes".into(),
            ]);
        }
        if let Some(u) = &self.entry.user {
            a.extend(["-l".into(), u.clone()]);
        }
        a
    }

    fn ssh(&self) -> Command {
        let mut c = Command::new("ssh");
        c.args(self.base_args());
        c
    }

    fn start_master(&self) -> anyhow::Result<()> {
        let label = &self.label;
        let log = std::fs::File::create(&self.master_log)
            .with_context(|| format!("creating {}", self.master_log.display()))?;
        let mut cmd = self.ssh();
        cmd.args([
            "-M",
            "-N",
            "-o",
            "ControlMaster=yes",
            "-o",
            "ControlPersist=no",
        ])
        .arg(&self.entry.host)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
        let mut child = spawn_guarded(cmd).with_context(|| {
            format!("host {label}: cannot run `ssh` (is openssh-client installed?)")
        })?;
        let deadline = Instant::now() + self.opts.connect_timeout + Duration::from_secs(5);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                forget_pid(child.id());
                let why = std::fs::read_to_string(&self.master_log).unwrap_or_default();
                bail!(
                    "host {label}: cannot connect over SSH ({}): {}",
                    st,
                    explain(why.trim())
                );
            }
            let ok = self
                .ssh()
                .args(["-O", "check"])
                .arg(&self.entry.host)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                forget_pid(child.id());
                bail!(
                    "host {label}: cannot connect over SSH: no connection within {:.0?}",
                    self.opts.connect_timeout
                );
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        *self.master.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        Ok(())
    }

    /// Runs `script` with `sh` on the host, `stdin` fed to it; exit code (None: killed),
    /// stdout, stderr. An error if it does not end within `timeout`.
    fn run_raw(
        &self,
        script: &str,
        stdin: Option<Stdio>,
        timeout: Duration,
    ) -> anyhow::Result<(Option<i32>, String, String)> {
        let mut cmd = self.ssh();
        cmd.args(["-T", "-o", "ControlMaster=no"])
            .arg(&self.entry.host)
            .arg(format!("sh -c {}", sh_quote(script)))
            .stdin(stdin.unwrap_or(Stdio::null()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child =
            spawn_guarded(cmd).with_context(|| format!("host {}: cannot run `ssh`", self.label))?;
        let mut out = child.stdout.take().context("ssh stdout")?;
        let mut err = child.stderr.take().context("ssh stderr")?;
        let t_out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Ok(Some(st)) = child.try_wait() {
                break Some(st);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        forget_pid(child.id());
        let out = t_out.join().unwrap_or_default();
        let err = t_err.join().unwrap_or_default();
        match status {
            None => bail!(
                "host {}: a command over SSH did not finish within {timeout:.0?}",
                self.label
            ),
            // 255: ssh's own failure (connection lost or refused).
            Some(st) if st.code() == Some(255) => bail!(
                "host {}: the SSH connection failed: {}",
                self.label,
                explain(err.trim())
            ),
            Some(st) => Ok((st.code(), out, err)),
        }
    }

    /// Runs `script`; an error naming the host and `what` unless it exits 0. Its stdout.
    pub fn run(
        &self,
        what: &str,
        script: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let (code, out, err) = match stdin {
            None => self.run_raw(script, None, timeout)?,
            Some(bytes) => {
                // Through a file: the child's stdin must not block the deadline loop.
                let mut f = tempfile_in(&self.local_dir)?;
                f.0.write_all(bytes).context("writing a temporary file")?;
                let r = std::fs::File::open(&f.1).context("reopening a temporary file")?;
                let res = self.run_raw(script, Some(Stdio::from(r)), timeout);
                let _ = std::fs::remove_file(&f.1);
                drop(f);
                res?
            }
        };
        if code != Some(0) {
            bail!(
                "host {}: {what} failed ({}): {}",
                self.label,
                code.map_or("killed".into(), |c| format!("exit {c}")),
                err.trim()
            );
        }
        Ok(out)
    }

    /// Uploads `local` to `bin/` unless the same bytes are there; the path on the host.
    fn upload(&self, local: &Path) -> anyhow::Result<String> {
        let name = local
            .file_name()
            .and_then(|n| n.to_str())
            .context("the program to upload has no file name")?;
        let remote = format!("{}/bin/{name}", self.workdir);
        let sum = local_sha256(local)?;
        let have = self
            .run(
                "checking the uploaded binary",
                &format!(
                    "if [ -x {r} ]; then sha256sum {r} | cut -d' ' -f1; fi",
                    r = sh_quote(&remote)
                ),
                None,
                Duration::from_secs(30),
            )?
            .trim()
            .to_string();
        if have == sum {
            return Ok(remote);
        }
        let file = std::fs::File::open(local)
            .with_context(|| format!("opening {} to upload it", local.display()))?;
        let tmp = format!("{remote}.part.{}", std::process::id());
        let (code, _, err) = self.run_raw(
            &format!(
                "cat > {t} && chmod 755 {t} && mv -f {t} {r}",
                t = sh_quote(&tmp),
                r = sh_quote(&remote)
            ),
            Some(Stdio::from(file)),
            Duration::from_secs(300),
        )?;
        if code != Some(0) {
            bail!(
                "host {}: uploading {} to {remote} failed: {}",
                self.label,
                local.display(),
                err.trim()
            );
        }
        Ok(remote)
    }

    /// Applies an nftables ruleset on the host (`nft -f -`).
    pub fn nft(&self, ruleset: &str) -> anyhow::Result<()> {
        let nft = sh_quote(self.entry.nft.as_deref().unwrap_or("nft"));
        self.run(
            "applying nftables rules",
            &format!("PATH=\"$PATH:/usr/sbin:/sbin\"; {nft} -f -"),
            Some(ruleset.as_bytes()),
            Duration::from_secs(10),
        )
        .map(|_| ())
    }

    /// Deletes the host's `inet splitbrain` table if it is there.
    pub fn delete_table(&self) -> anyhow::Result<()> {
        let nft = sh_quote(self.entry.nft.as_deref().unwrap_or("nft"));
        self.run(
            "deleting the nftables table",
            &format!(
                "PATH=\"$PATH:/usr/sbin:/sbin\"; if {nft} list table inet splitbrain >/dev/null 2>&1; then {nft} delete table inet splitbrain; fi"
            ),
            None,
            Duration::from_secs(10),
        )
        .map(|_| ())
    }

    fn member_program(&self, mc: &MemberCommand) -> String {
        if let Some(p) = &self.entry.program {
            return p.clone();
        }
        match self.uploads.get(&mc.program) {
            Some(r) => r.clone(),
            None => mc.program.display().to_string(),
        }
    }
}

/// A short reason for ssh's message (the message kept, a hint added).
fn explain(stderr: &str) -> String {
    let last = stderr
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("ssh exited without a message")
        .trim();
    let hint = if last.contains("Permission denied") {
        " (the key was refused: check --ssh-key, the host's `key` and its authorized_keys)"
    } else if last.contains("Host key verification failed") {
        " (unknown or changed host key: add it to known_hosts, or --ssh-strict-host-keys no)"
    } else if last.contains("Connection refused")
        || last.contains("timed out")
        || last.contains("No route")
        || last.contains("Could not resolve")
        || last.contains("Network is unreachable")
    {
        " (the host is unreachable: is it up, is sshd running, is the port right?)"
    } else {
        ""
    };
    format!("{last}{hint}")
}

fn tempfile_in(dir: &Path) -> anyhow::Result<(std::fs::File, PathBuf)> {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let p = dir.join(format!(".ssh-stdin-{}-{seq}", std::process::id()));
    let f = std::fs::File::create(&p).with_context(|| format!("creating {}", p.display()))?;
    Ok((f, p))
}

fn local_sha256(p: &Path) -> anyhow::Result<String> {
    let out = Command::new("sha256sum")
        .arg(p)
        .output()
        .context("running sha256sum")?;
    anyhow::ensure!(out.status.success(), "sha256sum {} failed", p.display());
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

impl Host for SshHost {
    fn name(&self) -> &str {
        &self.label
    }

    fn spawn(&self, mc: &MemberCommand, log: &Path) -> anyhow::Result<Box<dyn HostProcess>> {
        let id = log
            .file_stem()
            .and_then(|s| s.to_str())
            .context("a member log file without a name")?
            .to_string();
        let mut cmd = vec!["env".to_string()];
        cmd.extend(mc.env.iter().map(|(k, v)| format!("{k}={v}")));
        cmd.push(self.member_program(mc));
        cmd.extend(mc.args.iter().cloned());
        let pid_file = format!("{}/pids/{id}.pid", self.workdir);
        let script = supervisor_script(&self.run_dir, &id, &pid_file, &self.run_dir, &cmd);
        let session_log = self.local_dir.join(format!("{id}.ssh.log"));
        let errlog = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&session_log)
            .with_context(|| format!("opening {}", session_log.display()))?;
        let mut c = self.ssh();
        c.args(["-T", "-o", "ControlMaster=no"])
            .arg(&self.entry.host)
            .arg(format!("sh -c {} sb-supervisor-{id}", sh_quote(&script)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(errlog);
        let mut child =
            spawn_guarded(c).with_context(|| format!("host {}: cannot run `ssh`", self.label))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("ssh stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("ssh-{id}"))
            .spawn(move || {
                for line in std::io::BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
            .context("starting a reader thread")?;
        let mut p = SshProcess {
            host: self.label.clone(),
            id: id.clone(),
            child,
            stdin,
            lines: rx,
            pid: 0,
            exit: None,
            lost: None,
        };
        match p.await_line(|l| l.starts_with("pid "), Duration::from_secs(20)) {
            Ok(l) => {
                p.pid = l[4..].trim().parse().unwrap_or(0);
                Ok(Box::new(p))
            }
            Err(e) => {
                p.kill();
                let why = std::fs::read_to_string(&session_log).unwrap_or_default();
                bail!(
                    "host {}: starting {id} failed: {e}{}",
                    self.label,
                    if why.trim().is_empty() {
                        String::new()
                    } else {
                        format!(": {}", explain(why.trim()))
                    }
                )
            }
        }
    }

    fn collect_logs(&self, log: &Path) -> anyhow::Result<()> {
        let id = log
            .file_stem()
            .and_then(|s| s.to_str())
            .context("a member log file without a name")?;
        let remote_log = format!("{}/{id}.log", self.run_dir);
        let text = self.run(
            &format!("fetching {remote_log}"),
            &format!("cat {} 2>/dev/null || true", sh_quote(&remote_log)),
            None,
            Duration::from_secs(60),
        )?;
        std::fs::write(log, text).with_context(|| format!("writing {}", log.display()))?;
        let listing = self.run(
            "listing the data dir",
            &format!(
                "cd {} 2>/dev/null && ls -lAR . || echo '(no data dir)'",
                sh_quote(&self.data_dir(id).display().to_string())
            ),
            None,
            Duration::from_secs(30),
        )?;
        let to = log.with_extension("data.txt");
        std::fs::write(
            &to,
            format!(
                "# {}:{}\n{listing}",
                self.label,
                self.data_dir(id).display()
            ),
        )
        .with_context(|| format!("writing {}", to.display()))?;
        Ok(())
    }
}

impl Drop for SshHost {
    fn drop(&mut self) {
        let master = self.master.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(mut m) = master.take() {
            let _ = m.kill();
            let _ = m.wait();
            forget_pid(m.id());
        }
        let _ = std::fs::remove_file(&self.control);
    }
}

/// A member on a remote host: the local `ssh` session that runs its supervisor.
pub struct SshProcess {
    host: String,
    id: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// The member's pid on its host.
    pid: u32,
    /// `exit STATUS` from the supervisor.
    exit: Option<String>,
    /// Why the session ended without an exit line.
    lost: Option<String>,
}

impl SshProcess {
    /// Waits for a line matching `want` (remembering an `exit` line on the way).
    fn await_line(
        &mut self,
        want: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    if let Some(st) = l.strip_prefix("exit ") {
                        self.exit = Some(st.trim().to_string());
                    }
                    if want(&l) {
                        return Ok(l);
                    }
                    if self.exit.is_some() {
                        bail!("member {} exited (status {})", self.id, self.exit_text());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!("no answer from its supervisor within {timeout:.0?}")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("the SSH session to {} ended", self.host)
                }
            }
        }
    }

    fn drain(&mut self) {
        while let Ok(l) = self.lines.try_recv() {
            if let Some(st) = l.strip_prefix("exit ") {
                self.exit = Some(st.trim().to_string());
            }
        }
    }

    fn exit_text(&self) -> String {
        match self.exit.as_deref().and_then(|s| s.parse::<i32>().ok()) {
            Some(c) if c > 128 => format!("signal: {} on {}", c - 128, self.host),
            Some(c) => format!("exit status: {c} on {}", self.host),
            None => format!("unknown status on {}", self.host),
        }
    }

    fn send(&mut self, line: &str) -> anyhow::Result<()> {
        let s = self
            .stdin
            .as_mut()
            .with_context(|| format!("the SSH session to {} is closed", self.host))?;
        s.write_all(line.as_bytes())
            .and_then(|()| s.write_all(b"\n"))
            .and_then(|()| s.flush())
            .with_context(|| format!("the SSH session to {} is lost", self.host))
    }

    /// Reaps the local ssh process, killing it if it has not ended within `grace`.
    fn reap(&mut self, grace: Duration) {
        self.stdin = None;
        let deadline = Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        forget_pid(self.child.id());
    }
}

impl HostProcess for SshProcess {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn signal(&mut self, sig: Signal) -> anyhow::Result<()> {
        let what = match sig {
            Signal::Stop => "STOP",
            Signal::Cont => "CONT",
        };
        self.send(what)?;
        let l = self
            .await_line(|l| l == "ok" || l == "err", Duration::from_secs(5))
            .with_context(|| format!("host {}: SIG{what} of {}", self.host, self.id))?;
        if l != "ok" {
            bail!(
                "host {}: SIG{what} of {} (pid {}) failed",
                self.host,
                self.id,
                self.pid
            );
        }
        Ok(())
    }

    fn kill(&mut self) {
        self.drain();
        if self.exit.is_none() && self.send("KILL").is_ok() {
            let _ = self.await_line(|l| l.starts_with("exit "), Duration::from_secs(5));
        }
        // Closing stdin makes the supervisor kill the member if the KILL line was lost.
        self.reap(Duration::from_secs(5));
    }

    fn exited(&mut self) -> Option<String> {
        self.drain();
        if self.exit.is_some() {
            return Some(self.exit_text());
        }
        if let Some(l) = &self.lost {
            return Some(l.clone());
        }
        match self.child.try_wait() {
            Ok(Some(st)) => {
                // The reader may not have delivered the last lines yet.
                std::thread::sleep(Duration::from_millis(50));
                self.drain();
                if self.exit.is_some() {
                    return Some(self.exit_text());
                }
                forget_pid(self.child.id());
                let l = format!(
                    "the SSH session to {} was lost (ssh {st}); its supervisor kills the member when it notices",
                    self.host
                );
                self.lost = Some(l.clone());
                Some(l)
            }
            _ => None,
        }
    }
}

impl Drop for SshProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.kill();
        }
    }
}

/// A run's hosts, connected and prepared, and the network between their members.
pub struct Remote {
    /// Host `i` runs member `n<i+1>`.
    pub hosts: Vec<Arc<SshHost>>,
    pub net: Arc<crate::net::remote::RemoteNet>,
}

impl Remote {
    /// Puts every member of `cluster` on its host (its data dir there).
    pub fn place(
        &self,
        cluster: crate::cluster::Cluster,
    ) -> anyhow::Result<crate::cluster::Cluster> {
        let mut c = cluster;
        for (id, h) in c.ids().into_iter().zip(&self.hosts) {
            let dir = h.data_dir(&id);
            c = c.on_member_host(&id, h.clone(), dir)?;
        }
        Ok(c)
    }
}

/// The address members on `entry` listen on: its `address`, or its host name resolved to
/// IPv4.
pub fn member_address(entry: &HostEntry) -> anyhow::Result<Ipv4Addr> {
    if let Some(a) = &entry.address {
        return a.parse().with_context(|| {
            format!(
                "host {}: address {a:?} is not an IPv4 address",
                entry.label()
            )
        });
    }
    let addrs = (entry.host.as_str(), entry.port)
        .to_socket_addrs()
        .with_context(|| format!("host {}: cannot resolve {:?}", entry.label(), entry.host))?;
    addrs
        .filter_map(|a| match a.ip() {
            std::net::IpAddr::V4(v4) => Some(v4),
            _ => None,
        })
        .next()
        .with_context(|| {
            format!(
                "host {}: no IPv4 address for {:?} (set `address` in a TOML hosts file)",
                entry.label(),
                entry.host
            )
        })
}

/// Connects to and prepares every host of `hosts` in parallel (see [`SshHost::connect`]) for
/// the run in `run_dir`; the first error names its host.
pub fn connect_all(
    plan: &crate::plan::TestPlan,
    hosts: &crate::plan::RemoteHosts,
    run_dir: &Path,
) -> anyhow::Result<Remote> {
    let local_dir = run_dir.join("nodes");
    std::fs::create_dir_all(&local_dir)
        .with_context(|| format!("creating {}", local_dir.display()))?;
    let target = plan.sut()?;
    let upload = if plan.target == crate::sut::TargetKind::Splitbrain {
        vec![crate::sut::splitbrain::Splitbrain::current_exe().exe]
    } else {
        vec![]
    };
    let run = run_dir
        .file_name()
        .and_then(|n| n.to_str())
        .map(|t| format!("{}-{t}", plan.name))
        .unwrap_or_else(|| plan.name.clone())
        .replace(
            |c: char| !(c.is_ascii_alphanumeric() || "-_.+".contains(c)),
            "_",
        );
    let prep = Prepare {
        run,
        needs_nft: plan.nemesis.kinds().any(|k| k.needs().peer_links()),
        upload,
        local_dir,
    };
    let mut addrs = Vec::new();
    for e in &hosts.entries {
        addrs.push(member_address(e)?);
    }
    let results: Vec<anyhow::Result<SshHost>> = std::thread::scope(|s| {
        let handles: Vec<_> = hosts
            .entries
            .iter()
            .map(|e| {
                let prep = &prep;
                s.spawn(move || SshHost::connect(e, &hosts.ssh, prep))
            })
            .collect();
        handles
            .into_iter()
            .zip(&hosts.entries)
            .map(|(h, e)| {
                h.join().unwrap_or_else(|_| {
                    Err(anyhow::anyhow!("host {}: connecting panicked", e.label()))
                })
            })
            .collect()
    });
    let mut ok = Vec::new();
    let mut first = None;
    for r in results {
        match r {
            Ok(h) => ok.push(Arc::new(h)),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first {
        // The hosts that were prepared get their table removed again.
        if prep.needs_nft {
            for h in &ok {
                if let Err(e) = h.delete_table() {
                    eprintln!("warning: {e:#}");
                }
            }
        }
        return Err(e);
    }
    let net = crate::net::remote::RemoteNet::new(
        &plan.member_ids(),
        ok.clone(),
        addrs,
        target.shares_client_and_peer_port(),
        prep.needs_nft,
    )?;
    Ok(Remote {
        hosts: ok,
        net: Arc::new(net),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_survives_quotes_spaces_and_empty_words() {
        assert_eq!(sh_quote("abc-1.2/x=y"), "abc-1.2/x=y");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        // Round trip through a real shell.
        let words = [
            "plain",
            "with space",
            "it's",
            "",
            "$HOME",
            "a\"b",
            "--x=1;rm",
        ];
        let line: Vec<String> = words.iter().map(|w| sh_quote(w)).collect();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "for a in {}; do printf '<%s>' \"$a\"; done",
                line.join(" ")
            ))
            .output()
            .unwrap();
        let want: String = words.iter().map(|w| format!("<{w}>")).collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    }

    /// The supervisor, run by a local `sh` (what sshd would run): pauses, resumes and kills
    /// its member on command, and kills it when its stdin closes.
    #[test]
    fn the_supervisor_signals_its_member_and_kills_it_when_stdin_closes() {
        let dir = tempfile::tempdir().unwrap();
        let rd = dir.path().display().to_string();
        let pid_file = format!("{rd}/n1.pid");
        let run = |script: &str| {
            let mut c = Command::new("sh")
                .arg("-c")
                .arg(script)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let out = std::io::BufReader::new(c.stdout.take().unwrap());
            (c, out.lines())
        };
        let script = supervisor_script(&rd, "n1", &pid_file, &rd, &["sleep".into(), "300".into()]);
        let (mut c, mut lines) = run(&script);
        let pid: i32 = lines.next().unwrap().unwrap()[4..].parse().unwrap();
        assert!(std::fs::read_to_string(&pid_file)
            .unwrap()
            .starts_with(&pid.to_string()));
        let state = |pid: i32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    s.rsplit(')')
                        .next()
                        .unwrap()
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .to_string()
                })
                .unwrap_or_else(|_| "gone".into())
        };
        let stdin = c.stdin.as_mut().unwrap();
        stdin.write_all(b"STOP\n").unwrap();
        stdin.flush().unwrap();
        assert_eq!(lines.next().unwrap().unwrap(), "ok");
        let settles = |want_stopped: bool| {
            let deadline = Instant::now() + Duration::from_secs(2);
            while (state(pid) == "T") != want_stopped {
                assert!(Instant::now() < deadline, "state {} of {pid}", state(pid));
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        settles(true);
        stdin.write_all(b"CONT\n").unwrap();
        stdin.flush().unwrap();
        assert_eq!(lines.next().unwrap().unwrap(), "ok");
        settles(false);
        // Stdin closes (the session is gone): the member dies, the supervisor says so.
        drop(c.stdin.take());
        assert_eq!(lines.next().unwrap().unwrap(), "exit 137");
        c.wait().unwrap();
        assert!(matches!(state(pid).as_str(), "gone" | "Z"));
        assert!(!Path::new(&pid_file).exists(), "pid file removed");
        let log = std::fs::read_to_string(format!("{rd}/n1.log")).unwrap();
        assert!(log.contains("[splitbrain-ssh] member n1 on"), "{log}");
    }

    #[test]
    fn ssh_messages_get_a_hint_about_what_failed() {
        assert!(explain("root@h: Permission denied (publickey).").contains("key was refused"));
        assert!(
            explain("ssh: connect to host 10.0.0.9 port 22: Connection refused")
                .contains("unreachable")
        );
        assert!(explain("Host key verification failed.").contains("known_hosts"));
        assert_eq!(explain(""), "ssh exited without a message");
    }
}
