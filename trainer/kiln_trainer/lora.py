"""LoRA on every attention projection and MLP linear of the FLUX blocks, exported in the
diffusers/PEFT key layout that `FluxPipeline.load_lora_weights` reads."""

import json
import os
import re

import torch
from torch import nn

from . import numerics

TARGET = re.compile(
    r"^(transformer_blocks\.\d+\.(attn\.(to_q|to_k|to_v|to_out\.0|add_q_proj|add_k_proj|add_v_proj|to_add_out)"
    r"|ff\.net\.(0\.proj|2)|ff_context\.net\.(0\.proj|2))"
    r"|single_transformer_blocks\.\d+\.(attn\.(to_q|to_k|to_v)|proj_mlp|proj_out))$"
)


def target_linears(transformer):
    """Full module names of the linears LoRA attaches to (the same list the tests check)."""
    return [n for n, m in transformer.named_modules() if isinstance(m, nn.Linear) and TARGET.match(n)]


def add_lora(transformer, rank, seed):
    from peft import LoraConfig

    transformer.requires_grad_(False)
    torch.manual_seed(seed)  # lora_A init draws from the global RNG
    # alpha == rank -> scale 1, so the exported weights need no alpha entry
    cfg = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=True, target_modules=target_linears(transformer))
    transformer.add_adapter(cfg, adapter_name="default")
    params = [p for n, p in transformer.named_parameters() if "lora_" in n]
    for p in params:
        p.requires_grad_(True)
    return numerics.trainable_to_fp32(params)  # LoRA weights train in fp32 even on a bf16 base


class InitLoraError(Exception):
    """The LoRA to continue from cannot start this run: another model's, another rank, or broken."""


def load_init(transformer, path):
    """Starts the LoRA from one save_lora wrote for this model: same layers, same rank. A
    continued run's weights then move on from where that run's ended."""
    from safetensors.torch import load_file

    try:
        saved = load_file(path)
    except Exception as e:  # safetensors' own error types differ between its versions
        raise InitLoraError(f"{path} is not a readable .safetensors file: {e}") from None
    params = {
        "transformer." + n.replace(".default.", "."): p for n, p in transformer.named_parameters() if "lora_" in n
    }
    missing, unknown = sorted(set(params) - set(saved)), sorted(set(saved) - set(params))
    if missing or unknown:
        example = (missing or unknown)[0]
        raise InitLoraError(
            f"{path} does not fit this model's LoRA layers: {len(missing)} of the {len(params)} weights it "
            f"needs are missing and {len(unknown)} are unknown (e.g. {example})"
        )
    for key, p in params.items():
        if saved[key].shape != p.shape:
            theirs, ours = saved[key].shape[0 if ".lora_A." in key else 1], p.shape[0 if ".lora_A." in key else 1]
            raise InitLoraError(f"{path} has rank {theirs}; this run trains rank {ours}: use the same rank")
    bad = [k for k, w in saved.items() if not torch.isfinite(w).all()]
    if bad:
        raise InitLoraError(f"{path} holds non-finite weights ({bad[0]}): it cannot be continued")
    with torch.no_grad():
        for key, p in params.items():
            p.copy_(saved[key])


def lora_state_dict(transformer, rank, alpha=None):
    from peft.utils import get_peft_model_state_dict

    scale = (alpha or rank) / rank
    sd = get_peft_model_state_dict(transformer, adapter_name="default")
    out = {}
    for k, v in sd.items():
        v = v.detach().float().cpu().contiguous()
        if ".lora_B." in k and scale != 1.0:
            v = v * scale  # fold alpha/r into B so loaders can assume scale 1
        out["transformer." + k] = v
    return out


def save_lora(transformer, path, rank, metadata):
    from safetensors.torch import save_file

    sd = lora_state_dict(transformer, rank)
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    tmp = f"{path}.tmp-{os.getpid()}"
    save_file(sd, tmp, metadata=meta)
    os.replace(tmp, path)
    return path
