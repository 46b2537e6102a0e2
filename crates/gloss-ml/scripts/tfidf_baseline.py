#!/usr/bin/env python3
"""The classical baseline students are held to: TF-IDF + logistic regression (scikit-learn).

Usage: tfidf_baseline.py TRAIN.jsonl TEST.jsonl

Each line is {"text": ..., "label": ...}. Word 1-2-grams and character 2-5-grams (within word
boundaries), sublinear term frequencies; the regularisation C is chosen by 5-fold
cross-validation on the train file only, over 0.1, 1, 10 and 100. Prints one JSON object:
accuracy and macro-F1 on the test file, the chosen C, the example counts and scikit-learn's
version. `gloss bench distill` runs it on the gold train and test splits of its tasks.
"""

import json
import sys


def read(path):
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                texts.append(record["text"])
                labels.append(record["label"])
            except (ValueError, KeyError) as e:
                sys.exit(f"{path}:{number}: expected a JSON object with text and label ({e})")
    return texts, labels


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    try:
        import sklearn
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import accuracy_score, f1_score
        from sklearn.model_selection import GridSearchCV
        from sklearn.pipeline import FeatureUnion, Pipeline
    except ImportError:
        sys.exit("scikit-learn is not installed (pip install scikit-learn)")
    train_x, train_y = read(sys.argv[1])
    test_x, test_y = read(sys.argv[2])
    if len(set(train_y)) < 2 or not test_x:
        sys.exit("need at least two labels in the train file and one test record")
    features = FeatureUnion(
        [
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
        ]
    )
    model = Pipeline([("tfidf", features), ("lr", LogisticRegression(max_iter=2000))])
    folds = min(5, min(train_y.count(label) for label in set(train_y)))
    search = GridSearchCV(model, {"lr__C": [0.1, 1.0, 10.0, 100.0]}, cv=max(2, folds))
    search.fit(train_x, train_y)
    predicted = search.predict(test_x)
    print(
        json.dumps(
            {
                "accuracy": accuracy_score(test_y, predicted),
                "macro_f1": f1_score(test_y, predicted, average="macro"),
                "C": search.best_params_["lr__C"],
                "train_examples": len(train_x),
                "test_examples": len(test_x),
                "sklearn": sklearn.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
