"""Image fine-tuning: an image model + labelled images -> an evaluated image-classification bundle."""
