#!/usr/bin/env python3
"""Does a second node and a second Redis add capacity? The figures of the README's
"Several nodes: capacity" table, all measured in one run on this box.

    cargo build --release && python3 benches/cluster_capacity.py [--runs 2] [--json]

For each load (fan-out: 1 sender to 199 members at 250 msg/s; peer: 10 pairs at 2,000
round trips/s) it starts fresh processes and measures, from /proc, the CPU of every
server process over 10 s of steady load (two runs of 4 and 14 s, subtracted):

- one node on its own (`serve --ephemeral`, the default engine): the yardstick;
- two nodes on one Redis with every user on node A: node B's CPU against node A's, and
  the cluster's CPU per operation (both nodes and Redis) against one node's;
- the same over two Redis servers;
- 100 channels of even load (4 members each) over two Redis servers: each one's
  commands, messages (history entries: script calls carry batches) and CPU;
- churn of shared state (`bench --workload login`: 20 users logging in over and over,
  200 logins/s, each a login, a drop and its grace period) in one app on node A, while
  node B serves 10 idle users: of another app, then of the same app. Node B's CPU
  against node A's: a node applies the changes of the apps it serves, not of the others.

`--only attributes` measures memory instead: 500 users on node A each set 14 KB of user
attributes while node B serves one idle user of the same app; how much node A, node B
and Redis grew (`RTM_TUI=path/to/rtm-tui` measures another build).

The lower of `--runs` runs is kept for each ratio (the box is shared); the cluster
against one node compares each configuration's lowest CPU per operation. Needs
`redis-server` (Debian's package) on PATH. Every process listens on 127.0.0.1 and is
killed at the end.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("RTM_TUI", "target/release/rtm-tui")
TICK = os.sysconf("SC_CLK_TCK")
LOADS = {
    "fanout": ["--workload", "fanout", "--users", "200", "--rate", "250"],
    "peer": ["--workload", "peer", "--users", "20", "--rate", "2000"],
    "spread": ["--workload", "fanout", "--users", "400", "--channels", "100", "--rate", "1000"],
    "churn": ["--workload", "login", "--users", "20", "--rate", "200"],
}
# Each measurement runs the load twice on the same processes, for SHORT and LONG seconds:
# the difference is LONG - SHORT seconds of steady load, without set-up (logins, joins)
# and tear-down, whose costs are the same in both runs.
SHORT, LONG = 4, 14
# The attributes' memory: users on node A, each with 14 KB of user attributes, and how
# long their logins and writes are given before memory is read.
ATTRIBUTE_USERS = 500
ATTRIBUTE_SETTLE = 15.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_port(port, deadline=20.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class World:
    """The processes of one measurement, killed at the end."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rtm-capacity-")
        self.procs = []

    def spawn(self, args, log):
        out = open(os.path.join(self.dir, log), "w")
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=self.dir)
        self.procs.append(proc)
        return proc

    def redis(self):
        port = free_port()
        proc = self.spawn(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                           "--save", "", "--appendonly", "no", "--dir", self.dir],
                          f"redis-{port}.log")
        wait_port(port)
        return proc, port

    def node(self, engine, name):
        port = free_port()
        args = [os.path.abspath(BIN), "serve", "--listen", f"127.0.0.1:{port}", "--no-rate-limits"]
        args += ["--engine", engine, "--node-id", name] if engine else ["--ephemeral"]
        proc = self.spawn(args, f"{name}.log")
        wait_port(port)
        return proc, f"ws://127.0.0.1:{port}/rtm/v1"

    def two_nodes_on_one_redis(self):
        """A Redis and nodes A and B on it: (redis process, port, (A, url), (B, url))."""
        redis_proc, port = self.redis()
        engine = f"redis://127.0.0.1:{port}"
        return redis_proc, port, self.node(engine, "a"), self.node(engine, "b")

    def close(self):
        for proc in self.procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def redis_commands(port):
    info = subprocess.run(["redis-cli", "-p", str(port), "INFO", "stats"],
                          capture_output=True, text=True, check=True).stdout
    for line in info.splitlines():
        if line.startswith("total_commands_processed:"):
            return int(line.split(":")[1])
    return 0


def bench(url, load, seconds, app=None):
    args = [os.path.abspath(BIN), "bench", "--server", url, "--json", "--duration", str(seconds),
            "--app-id", app or f"capacity-{seconds}"]
    out = subprocess.run(args + LOADS[load], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def commandstats(port):
    """Calls per command name (INFO commandstats)."""
    info = subprocess.run(["redis-cli", "-p", str(port), "INFO", "commandstats"],
                          capture_output=True, text=True, check=True).stdout
    calls = {}
    for line in info.splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[len("cmdstat_"):].split(":", 1)
            calls[name] = int(rest.split("calls=")[1].split(",")[0])
    return calls


def measure(load, redis_count):
    """CPU seconds of every server process over one bench run, and the operations done.
    redis_count 0: one node on its own (no Redis)."""
    world = World()
    try:
        redis = [world.redis() for _ in range(redis_count)]
        engine = ",".join(f"redis://127.0.0.1:{port}" for _, port in redis)
        a, url = world.node(engine, "a")
        watched = {"node_a": a.pid}
        if redis_count:
            b, _ = world.node(engine, "b")
            watched["node_b"] = b.pid
            for i, (proc, _) in enumerate(redis):
                watched[f"redis_{i}"] = proc.pid
        time.sleep(1.0)  # heartbeats and subscriptions settle
        runs = []
        for seconds in (SHORT, LONG):
            commands = [redis_commands(port) for _, port in redis]
            stats = [commandstats(port) for _, port in redis]
            before = {name: cpu_seconds(pid) for name, pid in watched.items()}
            report = bench(url, load, seconds)
            after = {name: cpu_seconds(pid) for name, pid in watched.items()}
            runs.append({
                "ops": report["completed"],
                "cpu_s": {name: after[name] - before[name] for name in watched},
                "redis_commands": [redis_commands(port) - c for (_, port), c in zip(redis, commands)],
                # A message's history entry (ZADD): one per channel message, however
                # many go in one script call (a node batches them).
                "messages_kept": [
                    sum(v - st.get(k, 0) for k, v in commandstats(port).items()
                        if k == "zadd")
                    for (_, port), st in zip(redis, stats)
                ],
                "p99_ms": report["latency_ms"]["p99"],
            })
        short, long = runs
        return {
            "ops": long["ops"] - short["ops"],
            "cpu_s": {name: long["cpu_s"][name] - short["cpu_s"][name] for name in watched},
            "redis_commands": [a - b for a, b in zip(long["redis_commands"], short["redis_commands"])],
            "messages_kept": [a - b for a, b in zip(long["messages_kept"], short["messages_kept"])],
            "p99_ms": long["p99_ms"],
        }
    finally:
        world.close()


def measure_churn(same_app):
    """Node A's and node B's CPU over 10 s of login churn in one app on node A, with 10
    idle users on node B in another app (or, same_app, in the churn's app)."""
    world = World()
    try:
        redis_proc, port, (a, url_a), (b, url_b) = world.two_nodes_on_one_redis()
        watched = {"node_a": a.pid, "node_b": b.pid, "redis_0": redis_proc.pid}
        idle_app = "capacity-churn" if same_app else "capacity-other"
        idle = subprocess.Popen(
            [os.path.abspath(BIN), "bench", "--server", url_b, "--json", "--workload", "soak",
             "--users", "10", "--duration", str(SHORT + LONG + 20), "--app-id", idle_app],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(3.0)  # the idle users are in, heartbeats settle
            runs = []
            for seconds in (SHORT, LONG):
                before = {name: cpu_seconds(pid) for name, pid in watched.items()}
                report = bench(url_a, "churn", seconds, app="capacity-churn")
                after = {name: cpu_seconds(pid) for name, pid in watched.items()}
                runs.append({"ops": report["completed"],
                             "cpu_s": {n: after[n] - before[n] for n in watched}})
        finally:
            idle.kill()
            idle.wait()
        short, long = runs
        return {
            "ops": long["ops"] - short["ops"],
            "cpu_s": {n: long["cpu_s"][n] - short["cpu_s"][n] for n in watched},
        }
    finally:
        world.close()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def redis_used_kib(port):
    info = subprocess.run(["redis-cli", "-p", str(port), "INFO", "memory"],
                          capture_output=True, text=True, check=True).stdout
    for line in info.splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1]) // 1024
    return 0


def scenario(world, url, app, name, lines):
    """Plays `lines` with `rtm-tui script` in the background."""
    path = os.path.join(world.dir, f"{name}.rtm")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return world.spawn([os.path.abspath(BIN), "script", path, "--server", url, "--app-id", app],
                       f"{name}.out")


def measure_attributes(users=ATTRIBUTE_USERS):
    """Memory of node A (every user), node B (one idle user of the same app) and Redis
    once `users` users on node A each hold 14 KB of user attributes: before user
    attributes left the shared state, every node serving the app kept them all."""
    world = World()
    try:
        _, port, (a, url_a), (b, url_b) = world.two_nodes_on_one_redis()
        app = "capacity-attributes"
        scenario(world, url_b, app, "idle", ["idle login", "sleep 60s"])
        time.sleep(3.0)  # the idle user is in: node B holds the app
        before = {"node_a": rss_kib(a.pid), "node_b": rss_kib(b.pid), "redis": redis_used_kib(port)}
        value = "x" * 3500
        pairs = ",".join(f'"k{k}":"{value}"' for k in range(4))
        lines = []
        for i in range(users):
            lines.append(f"u{i} login")
            lines.append(f'u{i} raw {{"op":"set_user_attributes","attributes":{{{pairs}}}}}')
        lines.append("sleep 60s")
        scenario(world, url_a, app, "writers", lines)
        time.sleep(ATTRIBUTE_SETTLE)  # every login and write is in (a few seconds)
        after = {"node_a": rss_kib(a.pid), "node_b": rss_kib(b.pid), "redis": redis_used_kib(port)}
        return {"users": users, "bytes_each": 4 * (2 + len(value)),
                "grew_kib": {k: after[k] - before[k] for k in before}}
    finally:
        world.close()


def per_op_us(run):
    return sum(run["cpu_s"].values()) / max(run["ops"], 1) * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", choices=["attributes"],
                        help="run one section alone (attributes: the memory of user attributes)")
    args = parser.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} is missing: cargo build --release first")
    if args.only == "attributes":
        memory = measure_attributes()
        print(json.dumps(memory, indent=2) if args.json else
              f"{memory['users']} users on node A with {memory['bytes_each']} bytes of attributes "
              f"each: memory grew by {memory['grew_kib']} KiB")
        return
    results = {}
    for load in ("fanout", "peer"):
        rows = []
        for _ in range(args.runs):
            one = measure(load, 0)
            two = measure(load, 1)
            sharded = measure(load, 2)
            rows.append({
                "one_node_us_per_op": per_op_us(one),
                "idle_over_busy_one_redis": two["cpu_s"]["node_b"] / two["cpu_s"]["node_a"],
                "idle_over_busy_two_redis": sharded["cpu_s"]["node_b"] / sharded["cpu_s"]["node_a"],
                "cluster_over_one_one_redis": per_op_us(two) / per_op_us(one),
                "cluster_over_one_two_redis": per_op_us(sharded) / per_op_us(one),
                "cluster_us_per_op_one_redis": per_op_us(two),
                "cluster_us_per_op_two_redis": per_op_us(sharded),
                "redis_us_per_op": two["cpu_s"]["redis_0"] / max(two["ops"], 1) * 1e6,
                "node_a_us_per_op": two["cpu_s"]["node_a"] / max(two["ops"], 1) * 1e6,
                "p99_ms": [one["p99_ms"], two["p99_ms"], sharded["p99_ms"]],
            })
        best = {key: min(row[key] for row in rows) for key in rows[0] if key != "p99_ms"}
        # The cluster against one node: each configuration's lowest cost over the runs
        # (the least disturbed by the box's other work), not the lowest of the per-run
        # ratios, which a slow yardstick run would flatter.
        for ratio, config in (("cluster_over_one_one_redis", "cluster_us_per_op_one_redis"),
                              ("cluster_over_one_two_redis", "cluster_us_per_op_two_redis")):
            best[ratio] = best[config] / best["one_node_us_per_op"]
        best["p99_ms"] = rows[-1]["p99_ms"]
        results[load] = {"runs": rows, "best": best}
    spread = measure("spread", 2)
    commands = spread["redis_commands"]
    messages = spread["messages_kept"]
    results["spread"] = {
        "redis_commands": commands,
        "messages_kept": messages,
        "redis_cpu_s": [spread["cpu_s"]["redis_0"], spread["cpu_s"]["redis_1"]],
        "commands_ratio": max(commands) / max(min(commands), 1),
        "messages_kept_ratio": max(messages) / max(min(messages), 1),
    }
    churn = []
    for _ in range(args.runs):
        other, same = measure_churn(False), measure_churn(True)
        churn.append({
            "logins": other["ops"],
            "b_over_a_other_app": other["cpu_s"]["node_b"] / other["cpu_s"]["node_a"],
            "b_over_a_same_app": same["cpu_s"]["node_b"] / same["cpu_s"]["node_a"],
            "cpu_s_other_app": other["cpu_s"],
            "cpu_s_same_app": same["cpu_s"],
        })
    ratios = [key for key in churn[0] if key.startswith(("logins", "b_over_a"))]
    results["churn"] = {
        "runs": churn,
        "best": {key: min(row[key] for row in churn) for key in ratios},
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for load in ("fanout", "peer"):
        b = results[load]["best"]
        print(f"{load}: one node {b['one_node_us_per_op']:.1f} µs/op; "
              f"idle/busy node CPU {b['idle_over_busy_one_redis']:.3f} (1 Redis), "
              f"{b['idle_over_busy_two_redis']:.3f} (2 Redis); "
              f"cluster/one CPU per op {b['cluster_over_one_one_redis']:.2f}x (1 Redis), "
              f"{b['cluster_over_one_two_redis']:.2f}x (2 Redis); "
              f"cluster {b['cluster_us_per_op_one_redis']:.1f} µs/op of which Redis "
              f"{b['redis_us_per_op']:.1f}, node A {b['node_a_us_per_op']:.1f}; "
              f"p99 ms one/1R/2R {b['p99_ms']}")
    s = results["spread"]
    print(f"100 channels over 2 Redis: all commands {s['redis_commands']} "
          f"(ratio {s['commands_ratio']:.3f}), messages kept (ZADD) {s['messages_kept']} "
          f"(ratio {s['messages_kept_ratio']:.3f}), "
          f"CPU s {[round(c, 3) for c in s['redis_cpu_s']]}")
    c = results["churn"]["best"]
    print(f"login churn on node A ({c['logins']} logins in 10 s): node B / node A CPU "
          f"{c['b_over_a_other_app']:.3f} with B's users in another app, "
          f"{c['b_over_a_same_app']:.3f} in the same app")
    for row in results["churn"]["runs"]:
        cpu = {case: (row[f"cpu_s_{case}"]["node_a"], row[f"cpu_s_{case}"]["node_b"])
               for case in ("other_app", "same_app")}
        print("  run: node A / node B CPU s, B's users in another app "
              f"{cpu['other_app'][0]:.2f} / {cpu['other_app'][1]:.2f}, in the same app "
              f"{cpu['same_app'][0]:.2f} / {cpu['same_app'][1]:.2f}")


if __name__ == "__main__":
    main()
