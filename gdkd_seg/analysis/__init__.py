"""Evaluation, analyses and figures shared by tools/demo.py and
tools/analysis_tools."""
from .deployment import (cost_table, measure_costs, measurement_caption,
                         student_vs_teacher)
from .distribution import (TeacherDistribution, expected_calibration_error,
                           measure_teacher_distribution, pixel_statistics)
from .evaluate import evaluate_segmentor, iterate_logits
from .gradients import GradientMagnitudes, measure_gradient_magnitudes
from .plots import (plot_distribution_per_class, plot_gradient_magnitudes,
                    plot_miou_bars, plot_per_class_iou, plot_reliability,
                    plot_samples, plot_student_vs_teacher,
                    plot_teacher_distribution, plot_teacher_maps)

__all__ = [
    'GradientMagnitudes', 'TeacherDistribution', 'cost_table',
    'evaluate_segmentor', 'expected_calibration_error', 'iterate_logits',
    'measure_costs', 'measure_gradient_magnitudes', 'measurement_caption',
    'measure_teacher_distribution', 'pixel_statistics',
    'plot_distribution_per_class', 'plot_gradient_magnitudes',
    'plot_miou_bars', 'plot_per_class_iou', 'plot_reliability',
    'plot_samples', 'plot_student_vs_teacher', 'plot_teacher_distribution',
    'plot_teacher_maps', 'student_vs_teacher'
]
