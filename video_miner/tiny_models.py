"""Tiny random-weight checkpoints of the real architectures, built offline.

They are saved with ``save_pretrained`` and loaded back through the same
``from_pretrained(path)`` code as real checkpoints, so tests and the offline demo run
every model code path without a model hub. Their scores mean nothing: they are
stand-ins for ``google/siglip2-so400m-patch14-384``, ``facebook/dinov2-base`` and others.
"""

from __future__ import annotations

import os
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

WORDS = ["a", "photo", "of", "cat", "dog", "person", "face", "car", "rocket", "cup", "coffee", "the", "and", "."]


def _wordlevel_tokenizer(specials: list[str], eos: str) -> Tokenizer:
    vocab: dict[str, int] = {}
    for token in specials + WORDS:
        vocab.setdefault(token, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    tokenizer.post_processor = processors.TemplateProcessing(single=f"$A {eos}", special_tokens=[(eos, vocab[eos])])
    return tokenizer


def build_siglip2(path: str | os.PathLike, seed: int = 0) -> Path:
    import torch
    from transformers import Siglip2Config, Siglip2ImageProcessor, Siglip2Model, Siglip2Processor, Siglip2Tokenizer

    torch.manual_seed(seed)
    # AutoTokenizer always builds Siglip2Tokenizer for this model type, so use that class.
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"] + list("abcdefghijklmnopqrstuvwxyz0123456789.,▁"))}
    tokenizer = Siglip2Tokenizer(vocab=vocab, merges=[], model_max_length=16)
    processor = Siglip2Processor(image_processor=Siglip2ImageProcessor(patch_size=8, max_num_patches=64), tokenizer=tokenizer)
    config = Siglip2Config(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=16, pad_token_id=0, eos_token_id=1,
                         bos_token_id=2, projection_size=32),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           patch_size=8, num_patches=64),
    )
    return _save(Siglip2Model(config).eval(), processor, path)


def build_siglip(path: str | os.PathLike, seed: int = 0) -> Path:
    import torch
    from transformers import PreTrainedTokenizerFast, SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor

    torch.manual_seed(seed)
    tokenizer_object = _wordlevel_tokenizer(["<pad>", "</s>", "<unk>"], eos="</s>")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizer_object, pad_token="<pad>", eos_token="</s>",
                                        unk_token="<unk>", model_max_length=16)
    processor = SiglipProcessor(image_processor=SiglipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer)
    config = SiglipConfig(
        text_config=dict(vocab_size=tokenizer_object.get_vocab_size(), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=16, pad_token_id=0,
                         eos_token_id=1, bos_token_id=1, projection_size=32),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
    )
    return _save(SiglipModel(config).eval(), processor, path)


def build_dinov2(path: str | os.PathLike, seed: int = 0) -> Path:
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    processor = BitImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32},
                                  do_center_crop=True, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    # A wider weight init than the default keeps random features apart for different
    # images (at 0.02 every image embeds to nearly the same vector).
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          patch_size=8, image_size=32, initializer_range=0.2)
    return _save(Dinov2Model(config).eval(), processor, path)


def _save(model, processor, path: str | os.PathLike) -> Path:
    from video_miner.fsutil import atomic_dir

    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp)  # safetensors
        processor.save_pretrained(tmp)
    return Path(path)


BUILDERS = {"siglip2": build_siglip2, "siglip": build_siglip, "dinov2": build_dinov2}
