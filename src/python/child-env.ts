import type { Config } from '../config.js';
import type { Slot } from '../engine/job-kind.js';

/**
 * What a Python child inherits from the service's environment: only what Python, torch, CUDA
 * and Hugging Face read. Everything else stays behind, above all the service's own settings
 * and secrets (KILN_JWT_SECRET, KILN_DATABASE_URL, KILN_WEBHOOK_SECRET, KILN_VLM_API_KEY):
 * the child runs third-party model code and needs none of them. What a child does need from
 * the service travels in its JSON spec or is set by `childEnv` below.
 */
const INHERITED_NAMES = new Set([
  // Finding programs, and the folders that caches (the Hugging Face hub's included) and temp
  // files go under.
  'PATH',
  'HOME',
  'XDG_CACHE_HOME',
  'TMPDIR',
  // torch names its caches under TMPDIR after the user.
  'USER',
  // Locale and zone, so decoded text and log times read as they do in the service.
  'LANG',
  'TZ',
  // The interpreter's packages: a venv on PYTHONPATH, or an activated one.
  'PYTHONPATH',
  'VIRTUAL_ENV',
  // Native libraries (CUDA, cuDNN, the bitsandbytes build for this CUDA) and CPU threads; the
  // trainer sets threads itself when unset.
  'LD_LIBRARY_PATH',
  'BNB_CUDA_VERSION',
  'OMP_NUM_THREADS',
  // Downloads from the Hugging Face hub behind a proxy or a TLS-inspecting gateway.
  'HTTPS_PROXY',
  'https_proxy',
  'HTTP_PROXY',
  'http_proxy',
  'NO_PROXY',
  'no_proxy',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'REQUESTS_CA_BUNDLE',
  'CURL_CA_BUNDLE',
]);

const INHERITED_PREFIXES = [
  'LC_',
  // Hugging Face: HF_HOME, HF_TOKEN (the child downloads gated weights itself), HF_HUB_OFFLINE.
  'HF_',
  'HUGGINGFACE_',
  'TRANSFORMERS_',
  'DIFFUSERS_',
  // torch and its CPU math libraries.
  'TORCH_',
  'PYTORCH_',
  'MKL_',
  // The GPU stack: driver, runtime and collectives.
  'CUDA_',
  'NVIDIA_',
  'NCCL_',
  // Fault injection and GPU test hooks the trainer reads itself (KILN_FAULT_NAN_GRAD_STEPS);
  // never service settings, which config.ts reads and which no name here starts with.
  'KILN_FAULT_',
  'KILN_GPU_',
];

/** True for a variable a Python child may inherit. */
function isInherited(name: string): boolean {
  return INHERITED_NAMES.has(name) || INHERITED_PREFIXES.some((prefix) => name.startsWith(prefix));
}

/**
 * The whole environment of a Python child: the allowlisted part of `parent`, then what the
 * service sets itself. The process sees only its own GPU; a CPU slot sees none, so torch
 * cannot wander onto one.
 */
export function childEnv(config: Config, slot: Slot, parent: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(parent)) if (value !== undefined && isInherited(name)) env[name] = value;
  return {
    ...env,
    // Events are JSON lines read as they come; a buffered line would stall progress.
    PYTHONUNBUFFERED: '1',
    // The child's log is the job's human log: always at INFO, whatever the service logs at.
    KILN_LOG_LEVEL: 'INFO',
    CUDA_VISIBLE_DEVICES: slot.kind === 'gpu' ? slot.device : '',
  };
}
