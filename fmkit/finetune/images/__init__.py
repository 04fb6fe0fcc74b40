"""Image fine-tuning pieces for the image-classification task: its config, network and augmented batches."""
