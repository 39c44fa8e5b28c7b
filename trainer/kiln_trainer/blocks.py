"""Per-block treatments of the FLUX transformer: checkpoint only the first n blocks (as many as
the memory plan needs), and compile each block on its own (regional compilation).

Regional compilation compiles the code of one double and one single block and reuses it for all
57 of them, since blocks of a kind share their code and differ only in weights: far less compile
time than the whole model, and the same fused kernels where the time is spent."""

import torch


def blocks(transformer):
    return [*transformer.transformer_blocks, *transformer.single_transformer_blocks]


def checkpoint_first(transformer, n):
    """Gradient checkpointing for the first n blocks only (n = 0: none). Which n does not matter to
    the memory plan: it counts every block as keeping the same activations per token."""
    if n <= 0:
        transformer.disable_gradient_checkpointing()
        return
    chosen = {id(b) for b in blocks(transformer)[:n]}

    def maybe_checkpoint(block, *args):
        if id(block) in chosen:
            return torch.utils.checkpoint.checkpoint(block.__call__, *args, use_reentrant=False)
        return block(*args)

    transformer.enable_gradient_checkpointing(gradient_checkpointing_func=maybe_checkpoint)


def compile_each(transformer, backend="inductor"):
    """torch.compile every block's forward in place, replacing an earlier compile."""
    # Should a torch build guard on each block instance rather than share one graph, the default
    # limit (8) would leave most of FLUX's 57 blocks to run eagerly.
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    eager_each(transformer)
    # The forward, not the module: the first single block's pre-hook must run outside the graph.
    for block in blocks(transformer):
        block.forward = torch.compile(block.forward, backend=backend)
    if transformer.single_transformer_blocks:
        first = transformer.single_transformer_blocks[0]
        first._kiln_joint_views = first.register_forward_pre_hook(_joint_views, with_kwargs=True)


def eager_each(transformer):
    """Undo compile_each: every block runs its own forward again."""
    for block in blocks(transformer):
        vars(block).pop("forward", None)
        hook = vars(block).pop("_kiln_joint_views", None)
        if hook:
            hook.remove()


def _joint_views(block, args, kwargs):
    """Each single block hands the next its text and image streams as two views of one joint
    sequence; the first gets two separate tensors from the last double block. Dynamo guards on
    strides, so without this the single blocks compile twice (forward and backward), once for
    the first and once for the rest. One extra copy of the sequence buys that compile back."""
    names = ("hidden_states", "encoder_hidden_states")
    given = {**dict(zip(names, args, strict=False)), **kwargs}
    image, text = given["hidden_states"], given["encoder_hidden_states"]
    joint = torch.cat([text, image], dim=1)
    views = dict(hidden_states=joint[:, text.shape[1] :], encoder_hidden_states=joint[:, : text.shape[1]])
    positional = min(len(args), len(names))
    args = (*(views[n] for n in names[:positional]), *args[positional:])
    return args, {**kwargs, **{k: views[k] for k in names if k in kwargs}}
