"""Parameter constraints that scikit-learn's own kinds cannot state."""

from sklearn.utils._param_validation import Options


class Rule(Options):
    """A parameter constraint stated by a function, for what scikit-learn's cannot express.

    It derives from ``Options`` only because scikit-learn's validation accepts no other class
    of constraint; nothing of ``Options`` is used.

    Parameters
    ----------
    predicate : callable
        Returns whether a value satisfies the constraint.
    description : str
        The values that do, as error messages name them after "must be".
    """

    def __init__(self, predicate, description):
        super().__init__(object, set())
        self.predicate = predicate
        self.description = description

    def is_satisfied_by(self, val):
        return self.predicate(val)

    def __str__(self):
        return self.description
