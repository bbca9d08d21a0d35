"""The training room: everything that needs torch (``pip install "personcut[train]"``).

    config.py      ModelConfig / DataConfig / TrainConfig dataclasses, saved with every checkpoint
    model.py       the U-Net (classic or with an ImageNet encoder), UNet.from_config
    data/          image/mask folders, COCO, made-up scenes, paired transforms
    losses.py      BCE (+ Dice), ignoring unsure pixels
    metrics.py     validation counts on the device, scored by personcut.scoring
    runtime.py     one process or many under torchrun; CPU or CUDA; mixed precision
    loop.py        fit(config) and train_one_epoch: plain functions
    evaluation.py  evaluate (a model on a loader), evaluate_segmenter (what `remove` runs)
    checkpoint.py  save/load checkpoints and safetensors
    export.py      ONNX export with a parity check
    plots.py       training curves and prediction sheets

Nothing outside this package imports it at import time (tests/test_layout.py).
"""
