"""Post-processing math on the device: Triton kernels beside their torch references."""
