"""The training recipe: every stage's budget (steps, batch, learning rate, window) and every model's config,
saved as `recipe.json` next to the weights so a run can be repeated and resumed.

`Recipe()` is the full CPU recipe; `tiny_recipe()` the test-sized one (seconds on a CPU).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from kmm.config import (BammConfig, GeneratorConfig, MotionMambaConfig, MotionVAEConfig, ResidualConfig,
                        TokenizerConfig, _JsonConfig)


@dataclass
class Recipe(_JsonConfig):
    seed: int = 0
    threads: int = 1                    # one thread per process: the stages run as parallel processes
    tokenizer_steps: int = 2500
    tokenizer_batch: int = 64
    tokenizer_window: int = 64          # frames
    tokenizer_lr: float = 4e-4
    root_weight: float = 1.0            # tokenizer's root-path loss (ours, against root drift); 0 = off
    decoder_steps: int = 0              # base-layer decoder fine-tune (kmm/training/base_decoder.py); 0 = none
    decoder_lr: float = 2e-4
    decoder_action_balance: float = 0.0  # its windows: rare actions drawn more (as action_balance); 0 = off
    limb_weight: float = 0.0            # tokenizer, base-layer decoder: extra L1 on the limb ends; 0 = off
    tokenizer_action_balance: float = 0.0  # tokenizer windows: rare actions drawn more (as action_balance); 0 = off
    generator_steps: int = 1500
    generator_batch: int = 32
    generator_lr: float = 4e-4
    text_lr: float = 2e-5               # fine-tuning rate of the text encoder's top layer ("small", paper §3.3)
    residual_steps: int = 800
    residual_batch: int = 32
    warmup: int = 200
    steps_per_check: int = 250
    init_from: str = ""                 # a bundle folder: a stage without a checkpoint starts from its weights there
    distill_from: str = ""              # a bundle folder: its generator of the same name teaches (train.generator_step)
    distill_weight: float = 1.0         # weight of the teacher's KL term when distill_from is set
    distill_guided: bool = False        # that KL between guided logits (two-pass student; train.generator_step)
    pair_prob: float = 0.0              # generators: share of windows joining two clips with two texts; 0 = off
    window_min_tokens: int = 0          # generators: each window's length drawn in [this, max_tokens]; 0 = max_tokens
    pair_at_boundaries: bool = False    # joined windows: clip i's end, then clip j's start (as a timeline's segments)
    teacher_samples: int = 0            # generators: windows the distill_from teacher samples (kmm.training.teacher_set); 0 = off
    teacher_share: float = 0.5          # share of each generator batch's rows taken from those windows
    teacher_pair_share: float = 0.5     # share of those windows that hold two texts (a timeline's boundary)
    teacher_lengths: str = "clip"       # their lengths: "clip" (the clips') or "predicted" (the teacher's length head)
    guidance_spread: float = 0.5        # guidance distillation: share of rows whose scale is uniform in range
    action_balance: float = 0.0         # generators: sample rare actions more (kmm.training.common); 0 = off
    action_boost: dict = field(default_factory=dict)  # generators, with action_balance: {action: extra factor}
    gen_steps_eval: int = 10
    generators: tuple = ("kmm", "kmm-random", "transformer", "bamm")
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    residual: ResidualConfig = field(default_factory=ResidualConfig)
    # baselines: BAMM trains as one more generator (same steps/batch); Motion Mamba has its own VAE + denoiser
    bamm: BammConfig = field(default_factory=BammConfig)
    vae_steps: int = 1500               # ours: below the tokenizer's 2500 (CPU budget of the round-3 retrain)
    vae_batch: int = 64
    motion_mamba_steps: int = 800       # ours: below the generators' 1500 (CPU budget of the round-3 retrain)
    motion_mamba_batch: int = 32
    motion_vae: MotionVAEConfig = field(default_factory=MotionVAEConfig)
    motion_mamba: MotionMambaConfig = field(default_factory=MotionMambaConfig)

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        for k, c in (("tokenizer", TokenizerConfig), ("generator", GeneratorConfig), ("residual", ResidualConfig),
                     ("bamm", BammConfig), ("motion_vae", MotionVAEConfig), ("motion_mamba", MotionMambaConfig)):
            if isinstance(d.get(k), dict):
                d[k] = c.from_dict(d[k])
        if "generators" in d:
            d["generators"] = tuple(d["generators"])
        return super().from_dict(d)


def tiny_recipe() -> Recipe:
    """A test-sized recipe: seconds on a CPU, used by the test suite and CI."""
    from kmm.config import TextConfig

    return Recipe(tokenizer_steps=30, decoder_steps=10, tokenizer_batch=8, tokenizer_window=32, generator_steps=30, generator_batch=8,
                  residual_steps=10, residual_batch=8, warmup=5, steps_per_check=10, threads=1,
                  tokenizer=TokenizerConfig(width=32, code_dim=16, n_quantizers=3, n_codes=32),
                  generator=GeneratorConfig(n_codes=32, d_model=32, n_layers=1, align_dim=16, max_tokens=16,
                                            max_length_tokens=80, text=TextConfig()),
                  residual=ResidualConfig(n_codes=32, n_quantizers=3, code_dim=16, d_model=32, n_layers=1),
                  bamm=BammConfig(n_codes=32, d_model=32, n_layers=1, max_tokens=16),
                  vae_steps=30, vae_batch=8, motion_mamba_steps=30, motion_mamba_batch=8,
                  motion_vae=MotionVAEConfig(width=32, latent_dim=8),
                  motion_mamba=MotionMambaConfig(latent_dim=8, d_model=32, level_scans=(1, 1), bsm_groups=4,
                                                 max_tokens=16, max_length_tokens=40))
