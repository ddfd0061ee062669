"""Evaluation you can trust: FID (Inception or the project's classifiers), cached real statistics,
mode coverage, precision/recall, CAM, MIG and translation scores.

One job per module:
    frechet      Fréchet distance of two Gaussians (float64, eigenvalues; no scipy sqrtm)
    inception    pytorch-fid's InceptionV3 pool features, weights found offline or downloaded once
    classifiers  the project's MNIST digit and dSprites factor classifiers (shipped safetensors)
    offline      the validated offline realism evaluator: fid_offline, recognisable share, within-class diversity
    disturb      Heusel et al.'s disturbances (noise, blur, rectangles, swirl, salt & pepper, contamination)
    validate     the disturbance table that validates a feature extractor's Fréchet distance
    train_offline  `python -m gm.metrics.train_offline`: trains the offline evaluators
    features     batching, progress, cancelling and time estimates around any feature extractor
    stats        real-image statistics cached on disk, keyed by everything that changes them
    sources      what a user can point at: a run folder, an image folder, an images .npz, a stats .npz
    coverage     class histogram, classes covered, KL to uniform; conditional (ACGAN) accuracy
    prd          improved precision / recall (Kynkäänniemi et al., k = 3)
    cam          class activation maps of the MNIST classifier
    mig          mutual information gap of a VAE's encoder on dSprites
    translation  translation models against ground truth: target accuracy, content error, IoU / L1 with
                 the true counterpart, position error, cycle L1, per domain pair; the translation grid
    evaluate     orchestration used by the CLI and the app: fid(), evaluate(), estimate()
    sharding     the same evaluation split over torchrun processes (`--nproc N`), numbers unchanged
    cli          `python -m gm stats | fid | eval`

Import the submodules you need; this package imports nothing heavy on its own.
"""
