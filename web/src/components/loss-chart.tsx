import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface LossPoint {
  step: number;
  loss: number | null;
}

/** The training loss by step, redrawn in place as points arrive. */
export function LossChart({ points }: { points: LossPoint[] }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const el = box.current;
    if (!el || points.length === 0) return;
    const data: uPlot.AlignedData = [points.map((p) => p.step), points.map((p) => p.loss)];
    if (plot.current) {
      plot.current.setData(data);
      return;
    }
    const style = getComputedStyle(document.body);
    const stroke = style.getPropertyValue('--accent').trim() || '#c2410c';
    const axis = style.getPropertyValue('--fg').trim() || '#222';
    plot.current = new uPlot(
      {
        width: el.clientWidth || 600,
        height: 240,
        scales: { x: { time: false } },
        axes: [
          { label: 'step', stroke: axis },
          { label: 'loss', stroke: axis },
        ],
        series: [{ label: 'step' }, { label: 'loss', stroke, width: 2, spanGaps: true }],
      },
      data,
      el,
    );
  }, [points]);

  useEffect(() => {
    const resize = () => box.current && plot.current?.setSize({ width: box.current.clientWidth, height: 240 });
    window.addEventListener('resize', resize);
    return () => {
      window.removeEventListener('resize', resize);
      plot.current?.destroy();
      plot.current = null;
    };
  }, []);

  return (
    <div id="loss-chart" ref={box} role="img" aria-label={points.length ? `Loss over ${points.length} steps, last ${points.at(-1)?.loss?.toFixed(4) ?? '–'}` : 'No loss yet'}>
      {points.length === 0 && <p class="muted">No steps yet.</p>}
    </div>
  );
}
