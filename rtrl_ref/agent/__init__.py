"""Framework-free building blocks of the R2AC agent (real-time recurrent actor-critic).

    tree        parameter pytrees: named leaves, map, zeros, unflatten
    layers      Linear, ReLU, log-softmax, fan-in uniform initialisation
    conv        Conv2d and MaxPool2d (NCHW, im2col), forward and backward
    pool_numba  the max-pooling kernels (Numba) beside conv's NumPy reference
    stems       observation encoders: nature (Nature-DQN CNN), impala (deep ResNet), mlp
    heads       policy logits and value from the eLSTM output h
    vtrace      V-trace targets and policy-gradient advantages (Espeholt et al. 2018)
    loss        the actor-critic loss and its gradients w.r.t. logits and values
    optim       RMSProp, Adam, global gradient-norm clipping, linear learning-rate decay
    checkpoint  atomic, pickle-free checkpoints of named arrays plus JSON metadata

Dimension alphabet: the package's (B, T, I, H, A), plus N for samples with leading dims
flattened (N = T * B), F for feature sizes, and for images C, D channels in and out, Y, X height
and width, KY, KX kernel sizes, OY, OX output sizes (see conv.py).
"""
