"""Neural tangent kernels: empirical, analytic (infinite width), dynamics."""
