"""Importers that turn other people's motion files into our dataset folder format (kmm/data.py).

- `bvh`: a folder of BVH files + a captions file (CSV or JSONL), any rig the joint map knows
  (ours, SMPL-style, CMU, Mixamo) or a user mapping file; `python -m kmm data import-bvh`.
- `humanml3d`: the HumanML3D layout (new_joints/, texts/, train/val/test.txt); `python -m kmm data import-humanml3d`.
- `common`: what both share — resampling to 20 fps, the floor, splits, writing the folder atomically.
"""
