"""A BLIP-architecture captioner small enough for a CPU test, built offline from configs
with a word-level vocabulary made here. Its captions are nonsense in that vocabulary; it
exists so the local-model captioning path runs end to end without downloading a model."""

import os

import torch

# SIM905 wants a list literal; a vocabulary reads better as a phrase than as 25 quoted words
WORDS = (  # noqa: SIM905
    "a photo of the mug cup on table desk in with red blue teal orange white soft studio bright light "
    "shadow background product close up"
).split()


def build(out_dir, seed=0):
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    if os.path.isfile(os.path.join(out_dir, "config.json")):
        return out_dir
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    processor = BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=BertTokenizer(vocab=vocab)
    )
    config = BlipConfig(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        text_config=dict(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=128,
            bos_token_id=2,
            sep_token_id=3,
            pad_token_id=0,
            eos_token_id=3,
        ),
        projection_dim=32,
    )
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config)
    # the model would otherwise end every caption at once: no end token, so words come out
    model.generation_config.eos_token_id = None
    tmp = f"{out_dir}.tmp-{os.getpid()}"
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    os.makedirs(os.path.dirname(os.path.abspath(out_dir)), exist_ok=True)
    try:
        os.rename(tmp, out_dir)
    except OSError:  # another process built it first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
