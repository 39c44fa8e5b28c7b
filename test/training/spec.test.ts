import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Principal } from '../../src/auth/principal.js';
import { trainerSpec } from '../../src/training/spec.js';
import { newTaskRow } from '../../src/tasks/create.js';
import type { TrainingTaskRow } from '../../src/store/db.js';

const principal: Principal = { subject: 't', tenantId: 'acme', admin: true };

function row(trainingType: 'LORA' | 'FULL'): TrainingTaskRow {
  return newTaskRow(
    { trigger_word: 'TOK', training_type: trainingType, source_images: ['https://example.com/a.jpg'] },
    { principal, dataDir: '/tmp/kiln-unused', defaultBaseModel: 'builtin:tiny-flux' },
  );
}

describe('the trainer spec of a task', () => {
  test('a LoRA checkpoints only what its card needs; FULL every block', () => {
    assert.equal(trainerSpec(row('LORA'), { kind: 'gpu', device: '0' }).gradient_checkpointing, 'auto');
    assert.equal(trainerSpec(row('FULL'), { kind: 'gpu', device: '0' }).gradient_checkpointing, true);
    const spec = trainerSpec(row('LORA'), { kind: 'cpu', index: 0 });
    assert.equal(spec.device, 'cpu');
    assert.deepEqual(spec.resolution, [64]);
    assert.equal('init_lora' in spec, false, 'a task that continues nothing starts from a fresh LoRA');
    assert.equal(trainerSpec(row('LORA'), { kind: 'cpu', index: 0 }, '/data/tasks/x/sources/init_lora.safetensors').init_lora, '/data/tasks/x/sources/init_lora.safetensors');
  });
});
