-- Each Notary signature is verified once, when it is pushed, under the trust
-- configuration of that moment (`generation`, a hash the gate computes):
-- a decision reads signatures that passed first and those that failed last,
-- so no number of junk signatures can crowd out a valid one. A verdict only
-- orders the work: the signatures a decision reads are verified again.
CREATE TABLE signature_verdicts (
    repo TEXT NOT NULL,
    digest TEXT NOT NULL,
    generation TEXT NOT NULL,
    valid BIGINT NOT NULL,
    PRIMARY KEY (repo, digest, generation)
);
