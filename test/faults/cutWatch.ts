/**
 * The watch behind a cut: a worker thread that polls the test host's SSH sessions every 2 ms and,
 * the moment a step's script runs (or a named process does), SIGKILLs every session and the
 * processes asked for. It runs on its own thread at a raised priority, so neither the test's
 * event loop (engine events, GC) nor a busy machine (CI runs two suites side by side) lets a
 * short step (a few hundred ms) start and end between two looks: CI of stop 26 saw its chain of
 * cuts fail that way, where the same suite alone passed.
 *
 * Only the sshd listener's descendants are scanned (from /proc/PID/task/TID/children), not all of
 * /proc, so one look costs a few reads.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import { TestHost } from "../e2e/harness";

/** What fires a cut: the step's own script (its $0 is the step's name), or a process by name. */
export type CutTrigger = { step: string } | { comm: RegExp };

/** The running watch: `stop()` ends it (when the run is over); `done` says what it killed. */
export interface CutWatch {
    stop: () => void;
    done: Promise<string[]>;
}

/** The worker's code (plain JavaScript, so it needs no loader). */
const WORKER = String.raw`
const { parentPort, workerData } = require("node:worker_threads");
const fs = require("node:fs");
const os = require("node:os");
const { listener, step, comm, alsoKill, flag } = workerData;
const ended = new Int32Array(flag);
const commRe = comm ? new RegExp(comm) : undefined;
const killRes = alsoKill.map((r) => new RegExp(r));
try { os.setPriority(0, -15); } catch {}
const read = (f) => { try { return fs.readFileSync(f, "utf8"); } catch { return ""; } };
function children(pid) {
  let ids = [];
  try { ids = fs.readdirSync("/proc/" + pid + "/task"); } catch { return []; }
  return ids.flatMap((t) => read("/proc/" + pid + "/task/" + t + "/children").trim().split(" ").filter(Boolean).map(Number));
}
function tree() {
  const found = [];
  const walk = (p) => { for (const c of children(p)) { found.push(c); walk(c); } };
  walk(listener);
  return found.map((pid) => ({ pid, comm: read("/proc/" + pid + "/comm").trim(), args: read("/proc/" + pid + "/cmdline").replace(/\0/g, " ").trim() }));
}
const hit = (p) => commRe ? commRe.test(p.comm) : (p.args.startsWith("bash -c ") && p.args.endsWith(" " + step));
const killed = [];
const kill = (p) => { try { process.kill(p.pid, "SIGKILL"); killed.push(p.comm + "[" + p.pid + "]"); } catch {} };
while (Atomics.load(ended, 0) === 0) {
  const ps = tree();
  if (ps.some(hit)) {
    for (const p of ps) if (p.comm.startsWith("sshd")) kill(p);
    if (killRes.length) {
      // What the step started may have left the session's tree (apt's children, a daemonised pip): look everywhere in the host.
      for (const d of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(d) || Number(d) === listener) continue;
        let root = "";
        try { root = fs.readlinkSync("/proc/" + d + "/root"); } catch { continue; }
        if (root !== workerData.root) continue;
        const c = read("/proc/" + d + "/comm").trim();
        if (killRes.some((r) => r.test(c))) kill({ pid: Number(d), comm: c });
      }
    }
    break;
  }
  Atomics.wait(ended, 0, 0, 2);
}
parentPort.postMessage(killed);
`;

/** The pid of the host's listening sshd (never killed: the next run must connect). */
export function listenerPid(host: TestHost): number {
    return Number(fs.readFileSync(path.join(path.dirname(host.root), "sshd.pid"), "utf8").trim());
}

/** Starts watching `host` for `trigger`; kills its sessions (and `alsoKill`) once, when it fires. */
export function watchForCut(host: TestHost, trigger: CutTrigger, alsoKill: RegExp[] = []): CutWatch {
    const listener = listenerPid(host);
    const flag = new SharedArrayBuffer(4);
    const worker = new Worker(WORKER, {
        eval: true,
        workerData: {
            listener,
            root: host.root,
            step: "step" in trigger ? trigger.step : undefined,
            comm: "comm" in trigger ? trigger.comm.source : undefined,
            alsoKill: alsoKill.map((r) => r.source),
            flag,
        },
    });
    const done = new Promise<string[]>((resolve, reject) => {
        worker.once("message", (killed: string[]) => resolve(killed));
        worker.once("error", reject);
    });
    const ended = new Int32Array(flag);
    return {
        stop: () => {
            Atomics.store(ended, 0, 1);
            Atomics.notify(ended, 0);
        },
        done,
    };
}
