"""A classifier's pixel baseline: what a linear model on the raw pixels scores on the same split.

`engine eval --baseline` prints it beside the network's accuracy, so a figure in the docs always
has a reference anyone can recompute: multinomial logistic regression (scikit-learn's lbfgs,
deterministic) fitted on the recipe's own train split, untransformed ([0, 1] pixels at the
dataset's native size: no augmentation, no resizing), scored on the split `engine eval` scores.
"""

from __future__ import annotations

from engine.compiler.ir import located_error


def pixel_logistic_accuracy(run, split: str) -> float:
    """Accuracy on `split` of a logistic regression on the pixels of the train split."""
    if run.recipe["procedure"] != "classify":
        raise located_error(f"--baseline is a classifier's pixel baseline; this recipe's "
                            f"procedure is '{run.recipe['procedure']}'", run.recipe.file,
                            hint="drop --baseline (generative recipes print their PCA-Gaussian "
                                 "baseline with digit_fd)")
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from engine.train.evaluation.sampling import split_images
    x_train, y_train = split_images(run, "train")
    x_eval, y_eval = split_images(run, split)
    model = LogisticRegression(max_iter=500)
    with warnings.catch_warnings():  # 500 lbfgs steps are near the optimum; the score is the point
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train.flatten(1).numpy(), y_train.numpy())
    return float(model.score(x_eval.flatten(1).numpy(), y_eval.numpy()))
