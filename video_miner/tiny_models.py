"""Tiny random-weight checkpoints of the real architectures, built offline.

They are saved with ``save_pretrained`` and loaded back through the same
``from_pretrained(path)`` code as real checkpoints, so tests and the offline demo run
every model code path without a model hub. Their scores mean nothing: they are
stand-ins for ``google/siglip2-so400m-patch14-384``, ``facebook/dinov2-base``,
``IDEA-Research/grounding-dino-base``, ``google/owlv2-base-patch16-ensemble``,
Florence-2, ``facebook/sam-vit-base``, ``openai/clip-vit-large-patch14`` with the
LAION aesthetic head, and Whisper.
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


def _byte_level_chars() -> list[str]:
    """The 256 printable stand-ins byte-level BPE tokenizers (CLIP, BART) use for bytes."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = [chr(b) for b in printable]
    chars += [chr(256 + n) for n in range(256 - len(printable))]
    return chars


def build_grounding_dino(path: str | os.PathLike, seed: int = 0) -> Path:
    import torch
    from transformers import (BertConfig, BertTokenizer, GroundingDinoConfig, GroundingDinoForObjectDetection,
                              GroundingDinoImageProcessor, GroundingDinoProcessor, SwinConfig)

    torch.manual_seed(seed)
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS)}
    tokenizer = BertTokenizer(vocab=vocab, model_max_length=32)
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}), tokenizer=tokenizer)
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1], num_heads=[1, 1, 2],
                                   window_size=4, out_features=["stage1", "stage2", "stage3"]),
        text_config=BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=64),
        # decoder_layers must be >= 2 (weight tying fails with one)
        d_model=32, num_queries=20, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        encoder_attention_heads=2, decoder_attention_heads=2, num_feature_levels=3, encoder_n_points=2,
        decoder_n_points=2, max_text_len=32)
    return _save(GroundingDinoForObjectDetection(config).eval(), processor, path)


def _clip_tokenizer():
    """A CLIP tokenizer over single byte-level characters (no merges) and its vocabulary:
    CLIP's and OWLv2's text tower read it."""
    from transformers import CLIPTokenizer

    chars = _byte_level_chars()
    vocab: dict[str, int] = {}
    for token in chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]:
        vocab.setdefault(token, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16), vocab


def _clip_towers(vocab: dict[str, int]) -> dict:
    """The smallest CLIP text and vision towers (OWLv2 is built on CLIP's)."""
    eos = vocab["<|endoftext|>"]
    return dict(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16, bos_token_id=vocab["<|startoftext|>"],
                         eos_token_id=eos, pad_token_id=eos),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8))


def build_owlv2(path: str | os.PathLike, seed: int = 0) -> Path:
    import torch
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    torch.manual_seed(seed)
    tokenizer, vocab = _clip_tokenizer()
    processor = Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer)
    config = Owlv2Config(**_clip_towers(vocab), projection_dim=32)
    return _save(Owlv2ForObjectDetection(config).eval(), processor, path)


def build_florence2(path: str | os.PathLike, seed: int = 0) -> Path:
    import torch
    from transformers import (BartConfig, BartTokenizer, CLIPImageProcessor, Florence2Config,
                              Florence2ForConditionalGeneration, Florence2Processor, Florence2VisionConfig)

    torch.manual_seed(seed)
    vocab: dict[str, int] = {}
    for token in ["<s>", "<pad>", "</s>", "<unk>"] + _byte_level_chars():
        vocab.setdefault(token, len(vocab))
    tokenizer = BartTokenizer(vocab=vocab, merges=[], model_max_length=256, extra_special_tokens={"image_token": "<image>"})
    tokenizer.add_tokens([f"<loc_{i}>" for i in range(1000)] + ["<od>", "</od>"], special_tokens=False)
    vision = Florence2VisionConfig(depths=[1, 1], patch_size=[7, 3], patch_stride=[4, 2], patch_padding=[3, 1],
                                   patch_prenorm=[False, True], embed_dim=[16, 32], num_heads=[1, 2], num_groups=[1, 2],
                                   window_size=2, projection_dim=32, max_temporal_embeddings=4, max_position_embeddings=8)
    # image_seq_length must match the vision tower's tokens: (32 / 8)^2 + 1 pooled token.
    image_processor = CLIPImageProcessor(size={"height": 32, "width": 32}, crop_size={"height": 32, "width": 32},
                                         do_center_crop=False, image_seq_length=17)
    post = {k: {} for k in ["pure_text", "description_with_bboxes", "description_with_polygons", "polygons", "bboxes",
                            "description_with_bboxes_or_polygons", "phrase_grounding"]}
    processor = Florence2Processor(image_processor=image_processor, tokenizer=tokenizer, post_processor_config=post)
    text = BartConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1,
                      encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                      max_position_embeddings=1024, bos_token_id=0, pad_token_id=1, eos_token_id=2,
                      decoder_start_token_id=2, forced_bos_token_id=0)
    config = Florence2Config(vision_config=vision, text_config=text, image_token_id=tokenizer.image_token_id)
    return _save(Florence2ForConditionalGeneration(config).eval(), processor, path)


def build_whisper(path: str | os.PathLike, seed: int = 0) -> Path:
    """Whisper (``openai/whisper-*``'s classes) with a byte-level vocabulary, the
    transcribe/translate task tokens and two languages, so language detection and
    ``generate(language=..., task="transcribe")`` run as on a real multilingual checkpoint."""
    import torch
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizer)

    torch.manual_seed(seed)
    vocab: dict[str, int] = {}
    for token in ["<|endoftext|>"] + _byte_level_chars():
        vocab.setdefault(token, len(vocab))
    tokenizer = WhisperTokenizer(vocab=vocab, merges=[], bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                 unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    specials = ["<|startoftranscript|>", "<|en|>", "<|de|>", "<|transcribe|>", "<|translate|>", "<|startoflm|>",
                "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in specials}
    processor = WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tokenizer)
    config = WhisperConfig(vocab_size=len(tokenizer), num_mel_bins=80, d_model=32, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                           max_source_positions=1500, max_target_positions=64, pad_token_id=0, bos_token_id=0,
                           eos_token_id=0, decoder_start_token_id=ids["<|startoftranscript|>"])
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=0, pad_token_id=0, bos_token_id=0,
        max_length=64, no_timestamps_token_id=ids["<|notimestamps|>"], is_multilingual=True,
        lang_to_id={"<|en|>": ids["<|en|>"], "<|de|>": ids["<|de|>"]},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        # As real Whisper: no empty text, no special tokens inside it.
        forced_decoder_ids=None, suppress_tokens=list(ids.values()), begin_suppress_tokens=[0])
    return _save(model, processor, path)


def build_sam(path: str | os.PathLike, seed: int = 0) -> Path:
    """SAM through transformers' native classes; its PIL image processor (no torchvision)."""
    import torch
    from transformers import (SamConfig, SamImageProcessor, SamMaskDecoderConfig, SamModel, SamProcessor,
                              SamPromptEncoderConfig, SamVisionConfig)

    torch.manual_seed(seed)
    # 64-pixel inputs, 8-pixel patches: an 8x8 embedding; the decoder's masks are 32x32.
    vision = SamVisionConfig(hidden_size=32, output_channels=16, num_hidden_layers=2, num_attention_heads=2,
                             image_size=64, patch_size=8, mlp_dim=64, global_attn_indexes=[1], window_size=4,
                             num_pos_feats=8)
    prompt = SamPromptEncoderConfig(hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4)
    decoder = SamMaskDecoderConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_dim=32,
                                   iou_head_hidden_dim=16)
    config = SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)
    processor = SamProcessor(image_processor=SamImageProcessor(size={"longest_edge": 64},
                                                               pad_size={"height": 64, "width": 64}))
    return _save(SamModel(config).eval(), processor, path)


def build_clip(path: str | os.PathLike, seed: int = 0) -> Path:
    """A tiny random CLIP with a random LAION aesthetic head beside it
    (``aesthetic_head.safetensors``, the head's input the CLIP projection size): the
    offline stand-in for ``openai/clip-vit-large-patch14`` with
    ``sac+logos+ava1-l14-linearMSE.pth``. Its scores mean nothing."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from video_miner.aesthetic import HEAD_FILES, aesthetic_head
    from video_miner.fsutil import atomic_dir

    torch.manual_seed(seed)
    tokenizer, vocab = _clip_tokenizer()
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                 crop_size={"height": 32, "width": 32}),
                              tokenizer=tokenizer)
    config = CLIPConfig(**_clip_towers(vocab), projection_dim=24)
    head = aesthetic_head(config.projection_dim)
    with atomic_dir(path) as tmp:
        CLIPModel(config).eval().save_pretrained(tmp)
        processor.save_pretrained(tmp)
        save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(Path(tmp, HEAD_FILES[0])))
    return Path(path)


def _save(model, processor, path: str | os.PathLike) -> Path:
    from video_miner.fsutil import atomic_dir

    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp)  # safetensors
        processor.save_pretrained(tmp)
    return Path(path)


BUILDERS = {
    "siglip2": build_siglip2,
    "siglip": build_siglip,
    "dinov2": build_dinov2,
    "grounding_dino": build_grounding_dino,
    "owlv2": build_owlv2,
    "florence2": build_florence2,
    "sam": build_sam,
    "clip": build_clip,
    "whisper": build_whisper,
}
