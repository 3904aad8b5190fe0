from .distill_losses import DISTLoss, DKDLoss, GDKD3Loss, GDKDLoss, KDLoss

__all__ = ['KDLoss', 'DKDLoss', 'GDKDLoss', 'GDKD3Loss', 'DISTLoss']
