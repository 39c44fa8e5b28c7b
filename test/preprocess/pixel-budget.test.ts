import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PixelBudget } from '../../src/preprocess/pixel-budget.js';

/** Lets queued promise callbacks run. */
const settle = () => new Promise((r) => setImmediate(r));

describe('the pixel budget of concurrent decodes', () => {
  it('admits what fits at once and the rest in arrival order as pixels are given back', async () => {
    const budget = new PixelBudget(48);
    const order: string[] = [];
    const take = (name: string, pixels: number) => budget.take(pixels).then((release) => (order.push(name), release));
    const a = await take('a', 12);
    const b = await take('b', 30);
    const c = take('c', 12);
    const d = take('d', 1);
    await settle();
    assert.deepEqual(order, ['a', 'b'], 'c does not fit, and d waits behind it rather than overtaking');
    assert.equal(budget.used, 42);
    a();
    await settle();
    assert.deepEqual(order, ['a', 'b', 'c', 'd']);
    assert.equal(budget.used, 30 + 12 + 1);
    b();
    b();
    assert.equal(budget.used, 13, 'a second release changes nothing');
    (await c)();
    (await d)();
    assert.equal(budget.used, 0);
  });

  it('a picture larger than the whole budget runs alone', async () => {
    const budget = new PixelBudget(48);
    const small = await budget.take(10);
    let admitted = false;
    const huge = budget.take(200).then((release) => ((admitted = true), release));
    await settle();
    assert.equal(admitted, false);
    small();
    const release = await huge;
    assert.equal(budget.used, 48, 'it holds the whole budget, no more');
    let next = false;
    const after = budget.take(1).then((r) => ((next = true), r));
    await settle();
    assert.equal(next, false);
    release();
    (await after)();
  });

  it('a cancelled waiter leaves the queue, and those behind it move up', async () => {
    const budget = new PixelBudget(10);
    const first = await budget.take(8);
    const cancel = new AbortController();
    const big = budget.take(5, cancel.signal);
    const smallAfter = budget.take(2);
    cancel.abort(new Error('task cancelled'));
    await assert.rejects(big, /task cancelled/);
    const release = await smallAfter;
    assert.equal(budget.used, 10);
    first();
    release();
    assert.equal(budget.used, 0);
    await assert.rejects(budget.take(1, cancel.signal), /task cancelled/, 'an aborted signal is refused before queueing');
  });
});
