//! `splitbrain test --hosts …` against real sshd: three network namespaces play three
//! remote machines, each running Debian's `sshd -D -f CONFIG` with a host key and an
//! authorised key made here; the harness itself runs in a fourth namespace, all joined by a
//! bridge in a fifth, so nothing is added to this machine's own network namespace.
//!
//! Needs root, `sshd`, `ssh`, `ip` and `nft`; skipped (with a message) otherwise. The tests
//! run one at a time (they share the machine's two cores).

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_splitbrain");
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn sh(cmd: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("sh runs")
}

fn ok(cmd: &str) {
    let o = sh(cmd);
    assert!(
        o.status.success(),
        "`{cmd}`: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn usable() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let tools = ["/usr/sbin/sshd", "ssh", "ip", "nft", "ssh-keygen"]
        .iter()
        .all(|t| sh(&format!("command -v {t}")).status.success());
    if !(root && tools) {
        eprintln!("skipped: needs root, sshd, ssh, ssh-keygen, ip and nft");
    }
    root && tools
}

/// Three "remote hosts" (namespaces with sshd) and the harness's namespace.
struct Lab {
    tag: String,
    subnet: u8,
    dir: tempfile::TempDir,
    sshd: Vec<Child>,
    hosts: usize,
}

impl Lab {
    fn new(hosts: usize) -> Lab {
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("sshe{:x}x{seq}", pid);
        let subnet = ((pid.wrapping_mul(7).wrapping_add(seq)) % 250) as u8 + 1;
        let dir = tempfile::tempdir().unwrap();
        let mut lab = Lab {
            tag,
            subnet,
            dir,
            sshd: vec![],
            hosts,
        };
        lab.build();
        lab
    }

    fn ns(&self, what: &str) -> String {
        format!("{}-{what}", self.tag)
    }

    fn ip(&self, host: usize) -> String {
        format!("10.214.{}.{}", self.subnet, 10 + host)
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn link(&self, ns: &str, veth: &str, addr: &str) {
        let br = self.ns("br");
        ok(&format!("ip netns add {ns}"));
        ok(&format!(
            "ip link add {veth} netns {br} type veth peer name eth0 netns {ns}"
        ));
        ok(&format!("ip -n {br} link set {veth} master br0 up"));
        ok(&format!("ip -n {ns} addr add {addr}/24 dev eth0"));
        ok(&format!(
            "ip -n {ns} link set eth0 up && ip -n {ns} link set lo up"
        ));
    }

    fn build(&mut self) {
        let d = self.dir.path().display().to_string();
        ok(&format!(
            "ssh-keygen -q -t ed25519 -N '' -f {d}/hostkey && ssh-keygen -q -t ed25519 -N '' -f {d}/key && ssh-keygen -q -t ed25519 -N '' -f {d}/otherkey"
        ));
        ok("mkdir -p /run/sshd");
        let br = self.ns("br");
        ok(&format!("ip netns add {br}"));
        ok(&format!(
            "ip -n {br} link add br0 type bridge && ip -n {br} link set br0 up"
        ));
        self.link(&self.ns("h"), "vh", &format!("10.214.{}.2", self.subnet));
        for i in 1..=self.hosts {
            let ns = self.ns(&i.to_string());
            self.link(&ns, &format!("v{i}"), &self.ip(i));
            let cfg = self.path(&format!("sshd{i}.conf"));
            std::fs::write(
                &cfg,
                format!(
                    "ListenAddress {ip}\nPort 22\nHostKey {d}/hostkey\nAuthorizedKeysFile {d}/key.pub\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\nMaxSessions 50\nMaxStartups 50\n",
                    ip = self.ip(i)
                ),
            )
            .unwrap();
            let child = Command::new("ip")
                .args(["netns", "exec", &ns, "/usr/sbin/sshd", "-D", "-e", "-f"])
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(self.path(&format!("sshd{i}.log"))).unwrap())
                .spawn()
                .expect("sshd starts");
            self.sshd.push(child);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for i in 1..=self.hosts {
            while !sh(&format!(
                "ip netns exec {} ss -Hltn 'sport = :22' | grep -q 22",
                self.ns(&i.to_string())
            ))
            .status
            .success()
            {
                assert!(Instant::now() < deadline, "sshd {i} is not listening");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// A TOML hosts file; `edit(i, table)` may change host `i`'s table.
    fn hosts_file(&self, edit: impl Fn(usize, &mut String)) -> PathBuf {
        let mut text = String::new();
        for i in 1..=self.hosts {
            let mut t = format!(
                "[[host]]\nhost = \"{}\"\nuser = \"root\"\nkey = \"{}\"\nworkdir = \"{}\"\n",
                self.ip(i),
                self.path("key").display(),
                self.path(&format!("w{i}")).display()
            );
            edit(i, &mut t);
            text += &t;
            text += "\n";
        }
        let p = self.path("hosts.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn test_cmd(&self, hosts: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns("h"), EXE, "test", "--hosts"])
            .arg(hosts)
            .args(["--ssh-strict-host-keys", "no", "--results"])
            .arg(self.path("results"))
            .args(["--recovery-time", "2", "--op-timeout", "1"])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, hosts: &Path, args: &[&str]) -> Output {
        self.test_cmd(hosts, args)
            .output()
            .expect("splitbrain runs")
    }

    /// The newest run directory.
    fn latest_run(&self) -> PathBuf {
        let mut runs: Vec<PathBuf> = walk(&self.path("results"))
            .into_iter()
            .filter(|p| p.join("test.json").exists())
            .collect();
        runs.sort_by_key(|p| std::fs::metadata(p.join("test.json")).unwrap().mtime_nsec());
        runs.sort_by_key(|p| std::fs::metadata(p.join("test.json")).unwrap().mtime());
        runs.pop().expect("a run directory")
    }

    /// Inode of host `i`'s network namespace.
    fn netns_inode(&self, ns: &str) -> u64 {
        std::fs::metadata(format!("/var/run/netns/{ns}"))
            .unwrap()
            .ino()
    }

    /// What the harness left on the hosts: processes other than sshd, nftables tables, pid
    /// files.
    fn leftovers(&self) -> Vec<String> {
        let mut out = vec![];
        for i in 1..=self.hosts {
            let ns = self.ns(&i.to_string());
            let pids = sh(&format!("ip netns pids {ns}"));
            for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim() != "sshd" && !comm.is_empty() {
                    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    out.push(format!(
                        "host {i}: process {pid} {}",
                        String::from_utf8_lossy(&cmdline).replace('\0', " ")
                    ));
                }
            }
            let tables = sh(&format!("ip netns exec {ns} nft list tables"));
            if String::from_utf8_lossy(&tables.stdout).contains("splitbrain") {
                out.push(format!("host {i}: nftables table splitbrain"));
            }
            if let Ok(d) = std::fs::read_dir(self.path(&format!("w{i}/pids"))) {
                for e in d.flatten() {
                    out.push(format!("host {i}: pid file {}", e.path().display()));
                }
            }
        }
        out
    }

    /// Kills every sshd process of host `i` (the listener and every session): its SSH
    /// connections are lost.
    fn kill_sshd(&self, i: usize) {
        let pids = sh(&format!("ip netns pids {}", self.ns(&i.to_string())));
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "sshd" {
                let _ = sh(&format!("kill -9 {pid}"));
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.sshd {
            let _ = c.kill();
            let _ = c.wait();
        }
        for i in 1..=self.hosts {
            let ns = self.ns(&i.to_string());
            let _ = sh(&format!("ip netns pids {ns} | xargs -r kill -9"));
        }
        let _ = sh(&format!(
            "ip netns pids {} | xargs -r kill -9",
            self.ns("h")
        ));
        let mut names = vec![self.ns("h"), self.ns("br")];
        names.extend((1..=self.hosts).map(|i| self.ns(&i.to_string())));
        for n in names {
            let _ = sh(&format!("ip netns del {n}"));
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                out.push(p.clone());
                out.extend(walk(&p));
            }
        }
    }
    out
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

fn history_fs(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("history.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["process"] == "nemesis")
        .filter_map(|e| e["f"].as_str().map(String::from))
        .collect()
}

/// Each member's log starts with the supervisor's line naming its network namespace.
fn assert_members_ran_in_their_namespaces(lab: &Lab, run: &Path) {
    let harness_ns = lab.netns_inode(&lab.ns("h"));
    for i in 1..=lab.hosts {
        let log = std::fs::read_to_string(run.join(format!("nodes/n{i}.log"))).unwrap();
        let want = format!("net net:[{}]", lab.netns_inode(&lab.ns(&i.to_string())));
        assert!(
            log.lines().next().unwrap_or("").contains(&want),
            "n{i} did not run on host {i} ({want}): {}",
            log.lines().next().unwrap_or("")
        );
        assert!(!log.contains(&format!("net:[{harness_ns}]")));
        assert!(
            log.contains(&format!("listen={}:2379", lab.ip(i))) || log.contains(&lab.ip(i)),
            "n{i} listens on its host's address"
        );
        let listing = run.join(format!("nodes/n{i}.data.txt"));
        assert!(listing.exists(), "the data-dir listing of n{i} was fetched");
    }
}

#[test]
fn splitbrain_members_run_on_their_hosts_through_kills_pauses_and_partitions() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if !usable() {
        return;
    }
    let lab = Lab::new(3);
    let hosts = lab.hosts_file(|_, _| {});
    let o = lab.run(
        &hosts,
        &[
            "--nemesis",
            "kill,pause,partition",
            "--time-limit",
            "14",
            "--nemesis-interval",
            "1.5",
            "--seed",
            "7",
        ],
    );
    let run = lab.latest_run();
    let results = json(&run.join("results.json"));
    assert_eq!(results["valid"], true, "{}", text(&o));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let fs = history_fs(&run);
    assert!(fs.iter().any(|f| f == "start-partition"), "{fs:?}");
    assert!(
        fs.iter().any(|f| f == "start-kill" || f == "start-pause"),
        "{fs:?}"
    );
    assert!(!fs.iter().any(|f| f == "member-exited"), "{fs:?}");
    let hist = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    let errors: Vec<&str> = hist
        .lines()
        .filter(|l| l.contains("\"nemesis\"") && l.contains("\"error\":\""))
        .collect();
    assert!(errors.is_empty(), "faults failed to apply: {errors:?}");
    assert_members_ran_in_their_namespaces(&lab, &run);
    let test = json(&run.join("test.json"));
    assert_eq!(test["options"]["net"], "ssh");
    assert_eq!(test["options"]["nodes"], 3);
    let left = lab.leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn etcd_members_run_on_their_hosts_through_partitions_and_kills() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if !usable() {
        return;
    }
    if !Path::new("/usr/bin/etcd").exists() {
        eprintln!("skipped: needs /usr/bin/etcd (apt-get install etcd-server)");
        return;
    }
    let lab = Lab::new(3);
    // The hosts' etcd is the one installed there (here: the same file system).
    let hosts = lab.hosts_file(|_, t| t.push_str("program = \"/usr/bin/etcd\"\n"));
    let o = lab.run(
        &hosts,
        &[
            "--target",
            "etcd",
            "--nemesis",
            "partition,kill",
            "--time-limit",
            "12",
            "--nemesis-interval",
            "1.5",
            "--seed",
            "11",
        ],
    );
    let run = lab.latest_run();
    let results = json(&run.join("results.json"));
    assert_eq!(results["valid"], true, "{}", text(&o));
    let fs = history_fs(&run);
    assert!(fs.iter().any(|f| f == "start-partition"), "{fs:?}");
    assert_members_ran_in_their_namespaces(&lab, &run);
    let left = lab.leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_harness_killed_with_sigkill_leaves_leftovers_that_the_next_run_removes() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if !usable() {
        return;
    }
    let lab = Lab::new(3);
    let hosts = lab.hosts_file(|_, _| {});
    let mut child = lab
        .test_cmd(
            &hosts,
            &[
                "--nemesis",
                "partition",
                "--time-limit",
                "60",
                "--nemesis-interval",
                "1",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the run phase: every host has a supervised member.
    let deadline = Instant::now() + Duration::from_secs(60);
    let pid_files = |lab: &Lab| {
        (1..=3)
            .filter(|i| {
                std::fs::read_dir(lab.path(&format!("w{i}/pids")))
                    .map(|d| d.count() > 0)
                    .unwrap_or(false)
            })
            .count()
    };
    while pid_files(&lab) < 3 {
        assert!(Instant::now() < deadline, "the members never started");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    // A host whose supervisors cannot act when the harness dies (as when its network goes
    // away): stop them, so that their members outlive the harness.
    for i in 1..=3 {
        ok(&format!(
            "for p in $(ip netns pids {}); do grep -q sb-supervisor /proc/$p/cmdline 2>/dev/null && kill -STOP $p; done; true",
            lab.ns(&i.to_string())
        ));
    }
    // SIGKILL the harness (`ip netns exec` execs it: the child is the harness).
    child.kill().unwrap();
    child.wait().unwrap();
    let mut out = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut out);
    std::thread::sleep(Duration::from_millis(500));
    let before = lab.leftovers();
    for i in 1..=3 {
        assert!(
            before
                .iter()
                .any(|l| l.starts_with(&format!("host {i}: nftables"))),
            "host {i} has its table after the SIGKILL: {before:?}"
        );
        assert!(
            before
                .iter()
                .any(|l| l.starts_with(&format!("host {i}: process")) && l.contains("node")),
            "host {i}'s member outlived the harness: {before:?}"
        );
    }
    // The next run cleans every host first, then runs and leaves nothing.
    let o = lab.run(
        &hosts,
        &[
            "--nemesis",
            "partition",
            "--time-limit",
            "4",
            "--nemesis-interval",
            "1",
        ],
    );
    let results = json(&lab.latest_run().join("results.json"));
    assert_eq!(results["valid"], true, "{}", text(&o));
    let after = lab.leftovers();
    assert!(after.is_empty(), "left behind: {after:?}");
}

#[test]
fn unreachable_hosts_refused_keys_and_missing_nft_are_errors_naming_the_host() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if !usable() {
        return;
    }
    let lab = Lab::new(3);
    let short = ["--nemesis", "partition", "--time-limit", "3"];
    // Host 3 is an address nobody answers on.
    let dead = format!("10.214.{}.99", lab.subnet);
    let hosts = lab.hosts_file(|i, t| {
        if i == 3 {
            *t = t.replace(&lab.ip(3), &dead);
        }
    });
    let o = lab.run(&hosts, &short);
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        e.contains(&format!("host root@{dead}:22")) && e.contains("cannot connect"),
        "{}",
        text(&o)
    );
    // Host 2 does not know our key.
    let other = lab.path("otherkey").display().to_string();
    let key = lab.path("key").display().to_string();
    let hosts = lab.hosts_file(|i, t| {
        if i == 2 {
            *t = t.replace(&format!("\"{key}\""), &format!("\"{other}\""));
        }
    });
    let o = lab.run(&hosts, &short);
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        e.contains(&format!("host root@{}:22", lab.ip(2))) && e.contains("key was refused"),
        "{}",
        text(&o)
    );
    // Host 1 has no nft, and partitions need it; kills alone do not.
    let hosts = lab.hosts_file(|i, t| {
        if i == 1 {
            t.push_str("nft = \"/nonexistent/nft\"\n");
        }
    });
    let o = lab.run(&hosts, &short);
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        e.contains(&format!("host root@{}:22", lab.ip(1))) && e.contains("not found"),
        "{}",
        text(&o)
    );
    let o = lab.run(&hosts, &["--nemesis", "kill", "--time-limit", "3"]);
    assert_eq!(o.status.code(), Some(0), "kills need no nft: {}", text(&o));
    // Strict host-key checking (the default) refuses a host whose key is not known.
    let hosts = lab.hosts_file(|_, _| {});
    let o = Command::new("ip")
        .args(["netns", "exec", &lab.ns("h"), EXE, "test", "--hosts"])
        .arg(&hosts)
        .arg("--results")
        .arg(lab.path("results"))
        .args(short)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        e.contains(&format!("host root@{}:22", lab.ip(1))) && e.contains("known_hosts"),
        "{}",
        text(&o)
    );
    // A malformed hosts file names its line.
    let bad = lab.path("bad-hosts");
    std::fs::write(&bad, "root@h1\nroot@h2:notaport\n").unwrap();
    let o = lab.run(&bad, &short);
    assert_eq!(o.status.code(), Some(254), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bad-hosts:2:"),
        "{}",
        text(&o)
    );
    let left = lab.leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_connection_lost_mid_run_records_the_member_crashed_and_the_run_is_still_checked() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if !usable() {
        return;
    }
    let lab = Lab::new(3);
    let hosts = lab.hosts_file(|_, _| {});
    let mut child = lab
        .test_cmd(
            &hosts,
            &[
                "--nemesis",
                "pause",
                "--time-limit",
                "10",
                "--nemesis-interval",
                "2",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lab.path("w3/pids/n3.pid").exists() {
        assert!(Instant::now() < deadline, "n3 never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    lab.kill_sshd(3);
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    let status = child.wait().unwrap();
    let run = lab.latest_run();
    let results = json(&run.join("results.json"));
    assert!(
        results["valid"] == true || results["valid"] == "unknown",
        "checked: {} ({status}, {stderr})",
        results["valid"]
    );
    let crashed = results["crashed_members"].to_string();
    assert!(
        crashed.contains("n3") && crashed.contains(&format!("root@{}:22", lab.ip(3))),
        "{crashed}"
    );
    let hist = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    assert!(
        hist.lines()
            .any(|l| l.contains("member-exited") && l.contains("\"n3\"")),
        "the history records the lost member"
    );
    assert!(
        stderr.contains(&lab.ip(3)),
        "a warning names the lost host: {stderr}"
    );
    // Its supervisor saw the session end and killed the member; the others left nothing.
    let left = lab.leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
}
