"""Demonstration data: LeRobot v3.0 datasets (write, repair, validate, load), normalization and image transforms.

Modules: schema (contract as LeRobot features), writer (crash-safe episodes), repair, stats (meta/norm_stats.json),
normalize (Normalizer), dataset (open_dataset, TrainingDataset, collate), transforms (ImageAugConfig),
convert_robocasa / convert_groot (upstream formats), synthetic (test data). Import the module you need;
this package imports nothing heavy.
"""
