"""Datasets: the imdb base class, PASCAL VOC, any VOC-layout folder (labelImg), COCO, the built-in shapes set."""
