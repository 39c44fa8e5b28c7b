"""FLUX.1-dev as published (black-forest-labs/FLUX.1-dev, each component's config.json), and a
writer that saves such a pipeline folder with random weights made directly on the GPU.

With real weights out of reach here, this is how the trainer's whole path (text encoders,
VAE, transformer, sampler, export) meets the real sizes. Tokenizers are the tiny model's
character-level ones, padded to FLUX.1-dev's 512 T5 tokens; their ids fit the real vocabularies."""

import contextlib
import os
import shutil
import tempfile

import torch

from kiln_trainer.memory import FLUX_DEV, FLUX_DEV_PARAMS

TRANSFORMER = FLUX_DEV  # the planner's copy: one source for the published transformer config
VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=16,
    layers_per_block=2,
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[128, 256, 512, 512],
    norm_num_groups=32,
    sample_size=1024,
    act_fn="silu",
    scaling_factor=0.3611,
    shift_factor=0.1159,
    use_quant_conv=False,
    use_post_quant_conv=False,
    force_upcast=True,
    mid_block_add_attention=True,
)
CLIP_L = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    projection_dim=768,
    hidden_act="quick_gelu",
)
T5_XXL = dict(
    vocab_size=32128,
    d_model=4096,
    d_kv=64,
    d_ff=10240,
    num_layers=24,
    num_heads=64,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    feed_forward_proj="gated-gelu",
    layer_norm_epsilon=1e-6,
    tie_word_embeddings=False,
)
T5_TOKENS = 512

# Parameter counts of the published checkpoints, for the test that keeps these configs honest.
PUBLISHED_PARAMS = FLUX_DEV_PARAMS


def configs(size):
    """Component configs by size: "full" is FLUX.1-dev, "tiny" the built-in tiny model's shapes."""
    from kiln_trainer import tiny

    if size == "full":
        return dict(transformer=TRANSFORMER, vae=VAE, clip=CLIP_L, t5=T5_XXL, t5_tokens=T5_TOKENS)
    return dict(transformer=tiny.TRANSFORMER, vae=tiny.VAE, clip=tiny.CLIP, t5=tiny.T5, t5_tokens=tiny.T5_MAX_LEN)


@contextlib.contextmanager
def materialise_on(device, dtype):
    """Parameters are created on `device` in `dtype`: no fp32 host copy of 16B parameters."""
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(prev)


def build(cfg, device, dtype):
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextModel, T5EncoderModel

    from kiln_trainer import tiny

    clip_tok, t5_tok = tiny.tokenizers(cfg["t5_tokens"])
    clip_cfg, t5_cfg = tiny.text_configs(clip_tok, t5_tok, cfg["clip"], cfg["t5"])
    with materialise_on(device, dtype):
        parts = dict(
            transformer=FluxTransformer2DModel(**cfg["transformer"]),
            vae=AutoencoderKL(**cfg["vae"]),
            text_encoder=CLIPTextModel(clip_cfg),
            text_encoder_2=T5EncoderModel(t5_cfg),
        )
    return dict(
        parts, tokenizer=clip_tok, tokenizer_2=t5_tok, scheduler=FlowMatchEulerDiscreteScheduler(**tiny.SCHEDULER)
    )


def write_random_pipeline(out_dir, size, device, dtype, seed=0):
    """A diffusers FLUX folder with random weights; reused when already complete."""
    from diffusers import FluxPipeline

    if os.path.isfile(os.path.join(out_dir, "model_index.json")):
        return out_dir
    torch.manual_seed(seed)
    os.makedirs(os.path.dirname(os.path.abspath(out_dir)), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".flux-tmp-", dir=os.path.dirname(os.path.abspath(out_dir)))
    try:
        FluxPipeline(**build(configs(size), device, dtype)).save_pretrained(tmp, safe_serialization=True)
        os.rename(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out_dir
