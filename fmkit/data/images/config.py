"""Where labelled images come from, and how they are brought to one shape and split."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ImageDataConfig(BaseModel):
    """Labelled images: IDX files, a folder per class, a NumPy .npz, or a built-in dataset (fashion-mnist)."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="folder of class subfolders, IDX file or folder, .npz, or built-in (fashion-mnist)")
    format: Literal["auto", "idx", "folder", "npz"] = Field("auto", description="auto: from what the path is")
    image_size: int | None = Field(
        None, description="resize every image to this many pixels square while reading (default: keep; images of "
        "different sizes then need it)")
    channels: Literal[1, 3] | None = Field(
        None, description="convert to 1 (grayscale) or 3 (RGB) channels while reading (default: keep; mixed needs it)")
    validation_fraction: float = Field(0.1, description="share of each class held out for early stopping")
    test_fraction: float = Field(
        0.1, description="share of each class held out for the final test (a dataset with an official test split, "
        "such as fashion-mnist, keeps that one instead)")
    seed: int = Field(0, description="seed of the stratified split (and of max_rows sampling)")
    max_rows: int | None = Field(None, description="keep a stratified sample of this many images (quick runs, tests)")

    @model_validator(mode="after")
    def _check(self) -> "ImageDataConfig":
        errors = []
        if self.image_size is not None and not 8 <= self.image_size <= 1024:
            errors.append(f"image_size={self.image_size}: use 8..1024 pixels (28 for Fashion-MNIST, 224 for ImageNet)")
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                errors.append(f"{name}={value}: must be in [0, 1)")
        if self.validation_fraction + self.test_fraction >= 0.9:
            errors.append(f"validation_fraction + test_fraction = {self.validation_fraction + self.test_fraction:.2f} "
                          "leaves under 10% for training; lower them")
        if self.max_rows is not None and self.max_rows < 10:
            errors.append(f"max_rows={self.max_rows}: need at least 10 images, or leave it unset for all")
        if errors:
            raise ValueError("; ".join(errors))
        return self
