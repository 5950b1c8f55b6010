"""Training data pipeline: roidb preparation, minibatch blobs, the shuffling layer / torch Dataset."""
