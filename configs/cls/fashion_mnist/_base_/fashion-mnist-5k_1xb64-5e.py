# A CPU-sized Fashion-MNIST recipe (Xiao et al. 2017: 28x28 grey images of 10
# kinds of clothing) for the offline real-data check of the distillers:
# train on the first 5,000 training images for 5 epochs (SGD momentum 0.9,
# wd 5e-4, lr 0.05 cosine to 0), test on all 10,000 test images. The files
# come from Debian's dataset-fashion-mnist package
# (`bash tools/dataset_converters/get_fashion_mnist.sh`); nothing is
# downloaded.
_base_ = 'mmpretrain::_base_/default_runtime.py'
custom_imports = dict(imports=['gdkd_seg.cls'], allow_failed_imports=False)

data_root = 'data/fashion_mnist'
# Training-set mean and std (0.2860, 0.3530) x 255.
data_preprocessor = dict(num_classes=10, mean=[72.94], std=[90.02])
train_pipeline = [
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
# Images live in memory: worker processes would only cost start-up time.
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    dataset=dict(
        type='FashionMNIST',
        data_root=data_root,
        split='train',
        download=False,
        indices=5000,
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
# mmpretrain's MNIST datasets pick the test files by test_mode, not split.
val_dataloader = dict(
    batch_size=500,
    num_workers=0,
    dataset=dict(
        type='FashionMNIST',
        data_root=data_root,
        split='test',
        test_mode=True,
        download=False,
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

max_epochs = 5
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(
    type='CosineAnnealingLR',
    T_max=max_epochs,
    by_epoch=True,
    convert_to_iter_based=True)
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(interval=20), checkpoint=dict(interval=max_epochs))
randomness = dict(seed=0)
