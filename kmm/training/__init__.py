"""Training: what every stage shares (`common`: log, schedule, optimiser step, checkpoints, batches, text)
and the recipe (`recipe`: budgets and model configs). The stages themselves are `kmm.train` (tokenizer,
KMM / random-masking / transformer generators, BAMM, residual layers, `train_all`) and
`kmm.generators.motion_mamba.train` (the Motion Mamba baseline's VAE and denoiser); both import from here, and
`kmm.train` re-exports these names (`from kmm.train import Recipe, save_checkpoint` keeps working).
"""
