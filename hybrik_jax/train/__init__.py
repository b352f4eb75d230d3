"""Training: state, optimiser, losses, the pure train step, checkpoints, the loop.

state.py          TrainState (a pytree: params, BN stats, opt state, rng)
optimizer.py      PyTorch-equivalent Adam + mmcv's epoch step decay
losses.py         mmhuman3d HybrIK_Loss terms
step.py           (state, batch) -> (state, metrics) under jax.shard_map
checkpointing.py  orbax checkpoints, exact resume, inference loading
run_logging.py    TensorBoard scalars, history, training curves
loop.py           train_and_evaluate(config, workdir), behind train.py
"""
