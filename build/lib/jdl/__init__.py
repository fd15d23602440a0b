"""jdl: a JAX functional research framework for the deep-learning toolbox of F. Moutarde's
lecture 'Deep Learning: general principles, ConvNets, DBN, RNN' (MINES ParisTech, 2017)."""
__version__ = "0.1.0"
