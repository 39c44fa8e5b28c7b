"""`builtin:tiny-flux`: a FLUX pipeline small enough to train and sample on a laptop CPU.

Every component has the real FLUX architecture (same classes, same packing, same VAE
scaling convention, the diffusers folder layout), so tests exercise the exact code path used
for FLUX.1-dev. It is pretrained (pretrain.py) on the synthetic scenes of shapes.py and ships
in the package beside its provenance; nothing is downloaded. Tokenizers are built here: T5
knows the scenes' words as whole tokens and spells anything else, trigger words included,
one character at a time; CLIP spells everything.
"""

import hashlib
import os
import string

from . import shapes

SEED = 1234
PRETRAINED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny_flux")
CHARS = string.ascii_lowercase + string.digits + string.punctuation
T5_CHARS = CHARS + string.ascii_uppercase
T5_MAX_LEN = 32  # short text sequence keeps the joint attention cheap
SIZE = 64  # the side it was pretrained at
SAMPLE_STEPS = 20  # Euler steps that draw clean shapes; each costs milliseconds


# Component configs; the tokenizer-dependent ids are filled in by `text_configs`.
TRANSFORMER = dict(
    patch_size=1,
    in_channels=64,
    num_layers=2,
    num_single_layers=2,
    attention_head_dim=32,
    num_attention_heads=4,
    joint_attention_dim=64,
    pooled_projection_dim=64,
    guidance_embeds=True,
    axes_dims_rope=(8, 12, 12),
)
# 4 levels -> 8x downsampling like the FLUX VAE; 16 latent channels -> 64 after 2x2 packing
VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=16,
    layers_per_block=1,
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[8, 16, 32, 32],
    norm_num_groups=2,
    sample_size=512,
    scaling_factor=0.3611,  # FLUX's, until pretraining measures the tiny autoencoder's own
    shift_factor=0.1159,
    use_quant_conv=False,
    use_post_quant_conv=False,
    mid_block_add_attention=False,
)
CLIP = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=77,
    projection_dim=64,
)
T5 = dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, relative_attention_num_buckets=8)
# The scheduler FLUX.1-dev ships with, tiny or not.
SCHEDULER = dict(
    num_train_timesteps=1000,
    shift=3.0,
    use_dynamic_shifting=True,
    base_shift=0.5,
    max_shift=1.15,
    base_image_seq_len=256,
    max_image_seq_len=4096,
)


def tokenizers(t5_max_len=T5_MAX_LEN):
    """Character-level CLIP and T5 tokenizers: nothing to download, ids fit any vocab size."""
    from transformers import CLIPTokenizer, T5TokenizerFast

    vocab = {}
    for c in CHARS:
        vocab.setdefault(c, len(vocab))
    for c in CHARS:  # CLIP BPE marks word ends with </w>
        vocab.setdefault(c + "</w>", len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    clip = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    pieces += [(c, -2.0) for c in T5_CHARS] + [("\u2581" + c, -1.5) for c in T5_CHARS]
    pieces += [("\u2581" + w, -1.0) for w in shapes.WORDS]
    t5 = T5TokenizerFast(vocab=pieces, extra_ids=0, model_max_length=t5_max_len)
    return clip, t5


def text_configs(clip_tok, t5_tok, clip, t5):
    """CLIP and T5 configs whose vocab and special ids match our tokenizers."""
    from transformers import CLIPTextConfig, T5Config

    clip_cfg = CLIPTextConfig(
        **{"vocab_size": len(clip_tok), **clip},
        bos_token_id=clip_tok.bos_token_id,
        eos_token_id=clip_tok.eos_token_id,
        pad_token_id=clip_tok.pad_token_id,
    )
    t5_cfg = T5Config(**{"vocab_size": len(t5_tok), **t5}, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return clip_cfg, t5_cfg


def build_components(seed=SEED):
    """The untrained pipeline pretraining starts from."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextModel, T5EncoderModel

    clip_tok, t5_tok = tokenizers()
    clip_cfg, t5_cfg = text_configs(clip_tok, t5_tok, CLIP, T5)
    # re-seed before each component so that each one is reproducible on its own
    torch.manual_seed(seed)
    clip = CLIPTextModel(clip_cfg)
    torch.manual_seed(seed + 1)
    t5 = T5EncoderModel(t5_cfg)
    torch.manual_seed(seed + 2)
    vae = AutoencoderKL(**VAE)
    torch.manual_seed(seed + 3)
    transformer = FluxTransformer2DModel(**TRANSFORMER)
    scheduler = FlowMatchEulerDiscreteScheduler(**SCHEDULER)
    return dict(
        transformer=transformer,
        vae=vae,
        text_encoder=clip,
        tokenizer=clip_tok,
        text_encoder_2=t5,
        tokenizer_2=t5_tok,
        scheduler=scheduler,
    )


def fingerprint():
    """Names the shipped weights in cache keys: provenance.json holds every file's sha256."""
    with open(os.path.join(PRETRAINED, "provenance.json"), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]
