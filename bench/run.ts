/**
 * `make bench`: every benchmark that runs on a CPU machine, then one table. Figures that
 * matter are ratios of two things measured in this run; each bench checks that its work was
 * really done before it reports. The GPU step benchmark is separate: bench/gpu/.
 */
import fs from 'node:fs';
import path from 'node:path';
import { apiVerdicts, benchApi } from './api/api.js';
import { describeMachine, formatMachine } from './lib/machine.js';
import { REPO_ROOT } from './lib/paths.js';
import { printTable } from './lib/table.js';
import { benchPreprocess } from './preprocess/sharp-vs-pillow.js';
import { benchQueue } from './queue/queue.js';
import { benchStartLatency } from './engine/start-latency.js';
import { benchTrainer } from './trainer/cpu.js';

interface Line {
  area: string;
  measure: string;
  value: string;
  against: string;
  goal: string;
}

const started = Date.now();
const lines: Line[] = [];
const log = (s: string) => console.error(`[bench +${Math.round((Date.now() - started) / 1000)}s] ${s}`);

log('trainer on CPU');
const trainer = await benchTrainer();
for (const r of trainer.steps_per_second)
  lines.push({ area: 'trainer', measure: `tiny LoRA steps/s @${r.resolution}px`, value: String(r.steps_per_second), against: '', goal: '' });
const s = trainer.supervision;
lines.push({
  area: 'trainer',
  measure: 'supervision overhead (loop wall)',
  value: `${s.overhead_pct}%`,
  against: `${s.worker_loop_s}s vs ${s.direct_loop_s}s direct`,
  goal: s.overhead_pct < 2 ? 'met (<2%)' : 'missed (<2%)',
});
lines.push({
  area: 'trainer',
  measure: 'POST → first step, excl. model load',
  value: `${trainer.post_to_first_step.excluding_model_load_s}s`,
  against: `model load ${trainer.post_to_first_step.model_load_s}s`,
  goal: '',
});

log('preprocessing: sharp vs Pillow');
const pre = await benchPreprocess();
lines.push({
  area: 'preprocess',
  measure: '12 MP JPEG → 1024 JPEG, images/s',
  value: String(pre.sharp_ips),
  against: `Pillow ${pre.pillow_ips} (${pre.ratio}x); with draft ${pre.pillow_draft_ips} (${pre.ratio_vs_draft}x)`,
  goal: pre.ratio >= 3 ? 'met (3x)' : 'missed (3x)',
});

log('queue claims');
for (const q of await benchQueue({ log })) {
  lines.push({
    area: 'queue',
    measure: `${q.dialect} claims/s, ${q.workers} worker(s)`,
    value: String(q.claims_per_s),
    against: `p50 ${q.p50_ms} ms, p99 ${q.p99_ms} ms`,
    goal: '',
  });
}

log('engine: POST → preprocessing started');
const startLatency = await benchStartLatency();
for (const r of startLatency) {
  lines.push({
    area: 'engine',
    measure: `POST → preprocessing, ${r.worker}`,
    value: `p95 ${r.p95_ms} ms`,
    against: `p50 ${r.p50_ms} ms, max ${r.max_ms} ms over ${r.tasks} tasks`,
    goal: r.worker.startsWith('kiln serve') ? (r.p95_ms < 100 ? 'met (<100 ms)' : 'missed (<100 ms)') : '',
  });
}

log('API vs FastAPI baseline');
const apiRows = await benchApi({ log });
for (const v of apiVerdicts(apiRows)) {
  const k = apiRows.find((r) => r.service === 'kiln' && r.dialect === v.dialect && r.endpoint === v.endpoint)!;
  lines.push({
    area: 'api',
    measure: `${v.dialect} ${v.endpoint} req/s`,
    value: String(k.rps),
    against: `${v.rps_ratio}x baseline; p99 ${v.kiln_p99_ms} vs ${v.baseline_p99_ms} ms`,
    goal: v.goal_met ? 'met (3x, lower p99)' : 'missed (3x, lower p99)',
  });
}

const machine = describeMachine();
console.log(`\n${formatMachine(machine)}`);
printTable(`Kiln benchmarks (${Math.round((Date.now() - started) / 1000)} s)`, lines);
const out = path.join(REPO_ROOT, 'bench', 'last-run.json');
fs.writeFileSync(out, JSON.stringify({ machine, trainer, preprocess: pre, startLatency, api: apiRows, lines }, null, 2));
console.log(`\nraw results: ${path.relative(REPO_ROOT, out)}`);
