#!/usr/bin/env python3
"""Reproduces the NATS JetStream finding of README.md ("NATS JetStream KV"), without the harness.

Starts 3 nats-server members (JetStream, R3 stream KV_sb) on loopback in a temporary directory,
then, per trial, on one connection: a put of key k (ack: sequence S), then pipelined a plain
put of k and an update of k guarded by `Nats-Expected-Last-Subject-Sequence: S`. A correct
guard lets at most one of the two through after the other: if the plain put is stored first,
k's last sequence is no longer S and the update must be refused (err_code 10071). Prints how
many trials acked both. Usage: scripts/nats-cas-race.py [TRIALS] (needs /usr/sbin/nats-server).
"""
import json, os, signal, socket, subprocess, sys, tempfile, time

NATS = os.environ.get("SPLITBRAIN_NATS", "/usr/sbin/nats-server")
TRIALS = int(sys.argv[1]) if len(sys.argv) > 1 else 200
BASE = 24220  # client 24221.., routes 26221..


def conn(port, deadline):
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    f = s.makefile("rb")
    f.readline()  # INFO
    s.sendall(b'CONNECT {"verbose":false,"headers":true,"no_responders":true,"protocol":1}\r\n'
              b"SUB _I.* 1\r\nPING\r\n")
    while f.readline().strip() != b"PONG":
        pass
    return s, f


def replies(f, *wanted):
    """The replies to inboxes `wanted` (late replies to other inboxes are dropped)."""
    out = {}
    while not all(w in out for w in wanted):
        line = f.readline()
        if not line:
            raise EOFError("connection closed")
        if line.startswith((b"PING", b"+OK")):
            continue
        p = line.split()
        body = f.read(int(p[-1]) + 2)[:-2]
        out[p[1].decode()] = json.loads(body) if body else {}
    return out


def main():
    d = tempfile.mkdtemp(prefix="nats-cas-race-")
    procs = []
    try:
        routes = ",".join(f'"nats-route://127.0.0.1:{BASE + 2000 + i}"' for i in (1, 2, 3))
        for i in (1, 2, 3):
            conf = os.path.join(d, f"n{i}.conf")
            with open(conf, "w") as c:
                c.write(f'server_name: n{i}\nlisten: "127.0.0.1:{BASE + i}"\n'
                        f'jetstream {{ store_dir: "{d}/n{i}" }}\n'
                        f'cluster {{ name: race, listen: "127.0.0.1:{BASE + 2000 + i}", routes: [{routes}] }}\n')
            log = open(os.path.join(d, f"n{i}.log"), "w")
            procs.append(subprocess.Popen([NATS, "-c", conf], stdout=log, stderr=log))
        s, f = conn(BASE + 1, time.time() + 20)
        cfg = json.dumps({"name": "KV_sb", "subjects": ["$KV.sb.>"], "max_msgs_per_subject": 1,
                          "discard": "new", "storage": "file", "num_replicas": 3,
                          "allow_rollup_hdrs": True, "deny_delete": True}).encode()
        deadline = time.time() + 30
        for attempt in range(1000):
            inbox = f"_I.c{attempt}"
            s.sendall(b"PUB $JS.API.STREAM.CREATE.KV_sb %s %d\r\n%s\r\n" % (inbox.encode(), len(cfg), cfg))
            try:
                if "error" not in replies(f, inbox)[inbox]:
                    break
            except TimeoutError:
                pass  # no meta leader yet: nobody answered
            if time.time() > deadline:
                sys.exit("no JetStream meta leader within 30 s")
            time.sleep(0.5)
        time.sleep(2)  # the stream's leader
        both = 0
        for t in range(TRIALS):
            key = b"$KV.sb.k%d" % t
            s.sendall(b"PUB %s _I.a 1\r\n1\r\n" % key)
            seq = replies(f, "_I.a")["_I.a"]["seq"]
            h = b"NATS/1.0\r\nNats-Expected-Last-Subject-Sequence: %d\r\n\r\n" % seq
            s.sendall(b"PUB %s _I.p 1\r\n0\r\n" % key
                      + b"HPUB %s _I.u %d %d\r\n" % (key, len(h), len(h) + 1) + h + b"2\r\n")
            r = replies(f, "_I.p", "_I.u")
            if "error" not in r["_I.p"] and "error" not in r["_I.u"]:
                both += 1
                if both == 1:
                    print(f"e.g. guard {seq}: put -> {r['_I.p']}, guarded update -> {r['_I.u']}")
        print(f"{both}/{TRIALS} trials acked both the put and the update guarded by the sequence before it")
    finally:
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait()


if __name__ == "__main__":
    main()
