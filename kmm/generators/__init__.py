"""One folder per generator family: its model, its decoding and (Motion Mamba) its training loop.

    kmm/generators/kmm/           masked generator (KMM: bidirectional Mamba; the transformer baseline shares it):
                                  model.py, masking.py (key-frame / random masking), sampling.py (mask-predict)
    kmm/generators/bamm/          BAMM: model.py, decoding.py (cascaded: autoregressive until [END], then refine)
    kmm/generators/motion_mamba/  Motion Mamba: vae.py, model.py (latent denoiser), diffusion.py (DDIM), train.py

The pipeline reaches each through its backend in kmm/backends.py (interface: kmm/generator_api.py).
"""
