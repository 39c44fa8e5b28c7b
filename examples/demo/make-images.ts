/**
 * Makes the demo's "product photos": a teal mug with an orange band, drawn as SVG and
 * rendered by sharp on different backdrops, sizes and angles. No third-party images.
 * Usage: node --import tsx examples/demo/make-images.ts [out-dir]
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';

const BACKDROPS = ['#f4efe6', '#dfe8f1', '#e9f2e4', '#f6e1e1', '#ececec', '#fff6d8', '#e4e0f2', '#d9efee'];

function mug(i: number): string {
  const x = 150 + (i % 3) * 40;
  const y = 130 + ((i * 7) % 4) * 25;
  const scale = 0.8 + (i % 4) * 0.12;
  const angle = -12 + i * 4;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="512" height="512">
  <rect width="512" height="512" fill="${BACKDROPS[i % BACKDROPS.length]}"/>
  <ellipse cx="256" cy="${430 - i * 3}" rx="${150 - i * 4}" ry="18" fill="#000" opacity="0.12"/>
  <g transform="translate(${x} ${y}) rotate(${angle} 100 120) scale(${scale})">
    <path d="M180 70 q70 10 60 80 q-10 60 -60 60" fill="none" stroke="#1f8a8a" stroke-width="22"/>
    <rect x="0" y="20" width="190" height="230" rx="26" fill="#23a3a3"/>
    <rect x="0" y="110" width="190" height="38" fill="#f08a24"/>
    <ellipse cx="95" cy="22" rx="95" ry="16" fill="#157575"/>
    <circle cx="60" cy="70" r="10" fill="#ffffff" opacity="0.35"/>
  </g>
</svg>`;
}

export async function makeDemoImages(outDir: string, count = 8): Promise<string[]> {
  fs.mkdirSync(outDir, { recursive: true });
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const file = path.join(outDir, `mug-${String(i + 1).padStart(2, '0')}.png`);
    await sharp(Buffer.from(mug(i)))
      .png()
      .toFile(file);
    files.push(file);
  }
  return files;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = process.argv[2] ?? path.join('examples', 'demo', 'photos');
  const files = await makeDemoImages(out);
  console.log(`wrote ${files.length} demo photos to ${out}`);
}
