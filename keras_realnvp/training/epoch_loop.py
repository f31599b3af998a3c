"""The epochs of a training run: `fit` in chunks, checkpoints, non-finite steps, per-epoch evaluation.

`EpochLoop` holds this part of `TrainingRun` (which inherits it). The run trains in
chunks: each chunk (an epoch, or its part up to a `stop_after_steps` or since a resume)
is one `fit` call of one epoch, numbered as the run's epoch. At each epoch end the
held-out bits/dim are measured, a metrics row is recorded (`metrics.csv`), a sample grid
drawn and, with `tensorboard`, the held-out scalar logged; a checkpoint follows every chunk.
"""

import time

import keras

from keras_realnvp.data.streaming_batches import StreamingBatches
from keras_realnvp.data.training_batches import TrainingBatches
from keras_realnvp.evaluation import held_out_bits_per_dim
from keras_realnvp.training.checkpoints import CheckpointEvery
from keras_realnvp.training.epoch_outputs import tensorboard_callback, write_sample_grid
from keras_realnvp.training.finite_steps import SkipNonFiniteSteps
from keras_realnvp.training.metrics_log import write_metrics


class EpochLoop:
    """The epoch loop of `TrainingRun`: trains from a step to the run's last, recording each epoch.

    Not used on its own: `TrainingRun` inherits it, and `_train_epochs` reads the run's
    settings (`epochs`, `seed`, `checkpoint_every`, `callbacks`, ...).

    Example:

    >>> from keras_realnvp.training import TrainingRun
    >>> issubclass(TrainingRun, EpochLoop)
    True
    """

    def _train_epochs(self, model, manager, train_source, train_labels, eval_pixels, eval_labels, preprocessing,
                      flips, batch_size, steps_per_epoch, step, history, skipped):
        """Train from global step `step` to the last; returns `(step reached, the non-finite step guard)`.

        `history` (the per-epoch records) gains a record per finished epoch; `skipped` are the
        steps skipped before `step` (from the checkpoint continued).
        """
        total = self.epochs * steps_per_epoch
        last = min(total, self.stop_after_steps or total)
        guard = SkipNonFiniteSteps(self.max_nonfinite_steps, verbose=self.verbose)
        guard.skipped_steps = list(skipped)
        def state():  # what a checkpoint records besides the weights
            return {"history": history, "skipped_steps": list(guard.skipped_steps)}

        board = tensorboard_callback(self.output / "tensorboard") if self.tensorboard else None
        batches_class = StreamingBatches if self.streaming else TrainingBatches
        # What the epoch's fit calls in this process took, for its images/s and seconds.
        epoch_images, epoch_fit_seconds, epoch_start = 0, 0.0, None
        while step < last:
            epoch, offset = divmod(step, steps_per_epoch)
            chunk = min(steps_per_epoch - offset, last - step)
            batches = batches_class(
                train_source, model.image_shape, batch_size, self.seed, step, chunk, preprocessing, flips,
                labels=train_labels, workers=self.workers,
            )
            saver = CheckpointEvery(manager, self.checkpoint_every, step, state)
            guard.first_step = step
            if self.verbose:
                print(f"epoch {epoch + 1}/{self.epochs}" + (f" (from step {offset})" if offset else ""))
            if epoch_start is None:
                epoch_start = time.perf_counter()
            callbacks = [guard, saver, *([] if board is None else [board]), *(self.callbacks or [])]
            # shuffle=False: the batches are already in their seeded order; Keras would
            # otherwise permute the batch order with the global RNG, and resuming could not replay it.
            # One epoch numbered as the run's: callbacks (TensorBoard's steps) see the run's epochs.
            fit_start = time.perf_counter()
            fit = model.fit(batches, initial_epoch=epoch, epochs=epoch + 1, shuffle=False, verbose=self.verbose,
                            callbacks=callbacks)
            epoch_fit_seconds += time.perf_counter() - fit_start
            epoch_images += chunk * batch_size
            if guard.stopped:  # diverged: no checkpoint of this state, whose step is not `step + chunk`
                newest = manager.entries()[-1:]
                where = (f"The newest checkpoint, {manager.folder / newest[0]['file']} (step {newest[0]['step']}), "
                         "is intact" if newest else "No checkpoint was written")
                guard.message = f"{guard.message} {where}."
                guard.raise_if_stopped()
            step += chunk
            if step % steps_per_epoch == 0:
                mean, standard_error = held_out_bits_per_dim(model, eval_pixels, seed=self.seed, labels=eval_labels,
                                                             verbose=self.verbose)
                record = {
                    "epoch": epoch + 1,
                    "step": step,
                    "train_bits_per_dim": float(fit.history["bits_per_dim"][-1]),
                    "held_out_bits_per_dim": mean,
                    "held_out_standard_error": standard_error,
                    "skipped_steps": sum(step - steps_per_epoch < s <= step for s in guard.skipped_steps),
                    # float32's 7 digits: 0.001, not 0.0010000000474974513.
                    "learning_rate": float(f"{float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)):.7g}"),
                    "images_per_second": round(epoch_images / epoch_fit_seconds, 2) if epoch_fit_seconds else None,
                }
                history.append(record)
                if board is not None:
                    self._held_out_scalars.write(board, epoch, mean)
                self._log(
                    f"epoch {epoch + 1}: train {record['train_bits_per_dim']:.4f} bits/dim, "
                    f"held-out {mean:.4f} +- {standard_error:.4f}"
                )
                write_sample_grid(model, eval_pixels, eval_labels, self.output / f"samples_epoch_{epoch + 1:03d}.png",
                                  self.seed)
                record["seconds"] = round(time.perf_counter() - epoch_start, 3)
                epoch_images, epoch_fit_seconds, epoch_start = 0, 0.0, None
                write_metrics(self.output, history)
            manager.save(model, step, state())
        return step, guard
