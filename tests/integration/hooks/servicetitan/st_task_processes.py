"""Task processes of one worker (or of several workers), each a separate process running the hook.

Airflow takes seconds to import, so one Python imports it once and forks the task processes
from there (before any hook exists: no thread, socket or file is shared), as a worker's
supervisor forks its tasks. They then take orders: each order carries the environment a task
would see (the connection, the cache and rate-limit directories) and a wall-clock moment at
which all of them start together.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from typing import Any

_ZYGOTE = r"""
import json, os, sys, time
# Replies go out on the original stdout; whatever else writes to stdout (Airflow's log lines)
# goes to stderr, the log file.
replies_out = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
from airflow_provider_b1.hooks.servicetitan import ServiceTitanHook
try:
    import redis  # imported up front, as on a worker that has used it for a while
except ImportError:
    pass


def work(order):
    os.environ.update(order["env"])
    hook = ServiceTitanHook()
    try:
        if order["op"] == "hammer":
            # Warm up first (token, TLS, the limiter's store): the measure is of steady calls.
            hook.get_json("crm/customers", {"pageSize": 1})
        while time.time() < order["start_at"]:
            time.sleep(0.0005)
        calls, started = 0, time.time()
        if order["op"] == "read":
            hook.get_json("crm/customers", {"pageSize": 1})
            calls = 1
        elif order["op"] == "hammer":
            while time.time() < order["start_at"] + order["seconds"]:
                hook.get_json("crm/customers", {"pageSize": 1})
                calls += 1
        return {"calls": calls, "started": started, "ended": time.time(), "token_requests": hook.auth.token_requests}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        hook.close()


workers = []
for _ in range(int(sys.argv[1])):
    order_r, order_w = os.pipe()
    reply_r, reply_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(order_w)
        os.close(reply_r)
        for _, w, r in workers:
            w.close()
            r.close()
        replies = os.fdopen(reply_w, "w")
        for line in os.fdopen(order_r):
            replies.write(json.dumps(work(json.loads(line))) + "\n")
            replies.flush()
        os._exit(0)
    os.close(order_r)
    os.close(reply_w)
    workers.append((pid, os.fdopen(order_w, "w"), os.fdopen(reply_r)))
print("ready", file=replies_out, flush=True)
for line in sys.stdin:
    orders = json.loads(line)
    used = workers[: len(orders)]
    for (_, w, _), order in zip(used, orders):
        w.write(json.dumps(order) + "\n")
        w.flush()
    print(json.dumps([json.loads(r.readline() or "{}") for _, _, r in used]), file=replies_out, flush=True)
for _, w, _ in workers:
    w.close()
for pid, _, _ in workers:
    os.waitpid(pid, 0)
"""


class TaskProcesses:
    """``count`` long-lived processes that run hook work on order."""

    def __init__(self, count: int) -> None:
        # Logs go to a file: a pipe nobody reads could fill up and stop a process mid-test.
        self._log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - open for the object's life
        self.count = count
        self.zygote = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        if self.zygote.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the task processes did not start: {self.logs()[-2000:]}")

    def logs(self) -> str:
        """What the processes have written to stderr and stdout so far (their logs)."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read()

    def run(
        self, op: str, envs: list[dict[str, str]], *, seconds: float = 0.0, lead: float = 0.3
    ) -> list[dict[str, Any]]:
        """Have the first ``len(envs)`` processes do ``op`` at the same moment, each with its environment.

        :param op: ``read`` (one page of customers) or ``hammer`` (calls for ``seconds``, after one
            warm-up call that is not counted).
        :param envs: one environment per process.
        :param lead: seconds from now at which they start (time to receive the order).
        :return: each process's result (``calls``, ``started``, ``ended``, ``token_requests``).
        """
        assert len(envs) <= self.count
        start_at = time.time() + lead
        orders = [{"op": op, "env": env, "start_at": start_at, "seconds": seconds} for env in envs]
        self.zygote.stdin.write(json.dumps(orders) + "\n")
        self.zygote.stdin.flush()
        line = self.zygote.stdout.readline()
        if not line:
            raise RuntimeError(f"the task processes died: {self.logs()[-2000:]}")
        results = json.loads(line)
        for result in results:
            assert "error" not in result, result.get("error") or "a task process died"
        return results

    def close(self) -> str:
        """Stop every process; return their logs."""
        self.zygote.stdin.close()
        try:
            self.zygote.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.zygote.kill()
            self.zygote.wait()
        text = self.logs()
        self._log.close()
        return text
