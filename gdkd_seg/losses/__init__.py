from .distill_losses import DKDLoss, GDKD3Loss, GDKDLoss, KDLoss

__all__ = ['KDLoss', 'DKDLoss', 'GDKDLoss', 'GDKD3Loss']
