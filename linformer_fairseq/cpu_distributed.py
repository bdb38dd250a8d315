"""Lets fairseq's CUDA-only launchers run data-parallel on CPU (gloo). (being written)"""
