"""Multi-armed bandits: epsilon-greedy, UCB1 and Thompson sampling choose which ad to show."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labs import ConfigError, Lab, LabConfig, option

# Click-through rates shaped like the course's 10-ad optimisation data set (the best ad, #5,
# is clicked about 27% of the time); every "user" is simulated from these.
AD_CTRS = [0.17, 0.13, 0.07, 0.12, 0.27, 0.01, 0.11, 0.21, 0.10, 0.05]
ALGOS = ("epsilon-greedy", "ucb1", "ucb1-tuned", "thompson")


@dataclass
class Config(LabConfig):
    ctrs: list[float] = option(AD_CTRS, "true click-through rate of each ad (hidden from the "
                                        "agents)", min=0, max=1)
    steps: int = option(5000, "ads shown (rounds) per simulated campaign", min=1)
    seeds: int = option(200, "independent campaigns averaged (vectorised with numpy)", min=1)
    epsilon: float = option(0.1, "epsilon-greedy: share of rounds that show a random ad",
                            min=0, max=1)
    ucb_c: float = option(2.0, "UCB1's exploration constant c in sqrt(c ln t / n)", min=0)
    log_points: int = option(100, "points of the regret curves logged on the `step` axis",
                             min=1)

    def validate(self) -> None:
        super().validate()
        if len(self.ctrs) < 2:
            raise ConfigError(f"ctrs needs at least 2 ads to choose between, not {self.ctrs}")


def simulate(algo: str, ctrs: np.ndarray, steps: int, seeds: int, seed: int, *,
             epsilon: float = 0.1, ucb_c: float = 2.0) -> dict[str, np.ndarray]:
    """Run `seeds` campaigns at once (one row per campaign) and return, per step, the mean
    cumulative (pseudo-)regret and the mean share of pulls of the best ad; and per campaign
    the final pull counts and final regret. The clicks are common random numbers: every
    algorithm sees the same users."""
    k = len(ctrs)
    users = np.random.default_rng([seed, 0])  # who would click which ad, round by round
    agent = np.random.default_rng([seed, 1 + ALGOS.index(algo)])
    pulls = np.zeros((seeds, k))
    clicks = np.zeros((seeds, k))
    rows = np.arange(seeds)
    gap = ctrs.max() - ctrs  # what showing each ad costs against the best, in expectation
    best = int(np.argmax(ctrs))
    regret = np.zeros(steps)
    best_share = np.zeros(steps)
    total = np.zeros(seeds)
    for t in range(steps):
        u = users.random((seeds, k))
        if algo == "epsilon-greedy":
            mean = np.divide(clicks, pulls, out=np.full_like(clicks, np.inf), where=pulls > 0)
            greedy = argmax_random(mean, agent)
            explore = agent.random(seeds) < epsilon
            arm = np.where(explore, agent.integers(k, size=seeds), greedy)
        elif algo.startswith("ucb1"):
            if t < k:  # show every ad once first
                arm = np.full(seeds, t)
            else:
                mean = clicks / pulls
                if algo == "ucb1":  # Hoeffding: built for any reward in [0, 1]
                    bonus = np.sqrt(ucb_c * np.log(t) / pulls)
                else:  # UCB1-Tuned: the same bound with the arm's own variance (clicks are
                    # 0/1, so the mean of squares is the mean), at most 1/4
                    var = mean - mean**2 + np.sqrt(2 * np.log(t) / pulls)
                    bonus = np.sqrt(np.log(t) / pulls * np.minimum(0.25, var))
                arm = argmax_random(mean + bonus, agent)
        else:  # Thompson sampling with a Beta(1, 1) prior on each CTR
            arm = argmax_random(agent.beta(1 + clicks, 1 + pulls - clicks), agent)
        reward = u[rows, arm] < ctrs[arm]
        pulls[rows, arm] += 1
        clicks[rows, arm] += reward
        total += gap[arm]
        regret[t] = total.mean()
        best_share[t] = pulls[:, best].mean() / (t + 1)
    return {"regret": regret, "best_share": best_share, "pulls": pulls, "final": total}


def argmax_random(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row-wise argmax, ties broken at random (so untried ads are not always taken in order)."""
    noise = rng.random(values.shape) * 1e-9
    top = values.max(axis=1, keepdims=True)
    return np.argmax(np.where(values == top, 1.0 + noise, 0.0), axis=1)


class Bandits(Lab):
    """Epsilon-greedy, UCB1 and Thompson sampling pick ads: cumulative regret over many seeds."""

    lesson = "rl"
    tags = ("rl", "bandits", "basics")
    explains = "none"
    headline = "regret_thompson"
    Config = Config

    def run(self, cfg: Config, run) -> dict:
        ctrs = np.asarray(cfg.ctrs, dtype=float)
        results = {}
        for algo in run.bar(ALGOS, desc="algorithms"):
            results[algo] = simulate(algo, ctrs, cfg.steps, cfg.seeds, cfg.seed,
                                     epsilon=cfg.epsilon, ucb_c=cfg.ucb_c)
        points = np.unique(np.linspace(1, cfg.steps, min(cfg.log_points, cfg.steps))
                           .round().astype(int))
        for t in points:
            run.log({f"{_key(a)}/regret": float(r["regret"][t - 1])
                     for a, r in results.items()} |
                    {f"{_key(a)}/best_share": float(r["best_share"][t - 1])
                     for a, r in results.items()}, step=int(t), axis="step")
        best = int(np.argmax(ctrs))
        rows = [[algo, float(r["regret"][-1]), float(r["best_share"][-1]),
                 *np.round(r["pulls"].mean(axis=0), 1).tolist()] for algo, r in results.items()]
        run.table("pulls", ["algorithm", "final_regret", "best_ad_share",
                            *[f"ad{i}" for i in range(len(ctrs))]], rows)
        run.figure("regret", regret_figure(results, ctrs))
        metrics: dict[str, float] = {}
        for algo, r in results.items():
            metrics[f"regret_{_key(algo)}"] = float(r["regret"][-1])
        for algo, r in results.items():  # the standard error of each mean over campaigns
            metrics[f"regret_se_{_key(algo)}"] = float(r["final"].std() / np.sqrt(cfg.seeds))
        for algo, r in results.items():
            metrics[f"best_share_{_key(algo)}"] = float(r["best_share"][-1])
        metrics["best_ad"] = float(best)
        metrics["regret_random"] = float(cfg.steps * (ctrs.max() - ctrs.mean()))
        return {"regret_thompson": metrics.pop("regret_thompson"), **metrics}


def _key(algo: str) -> str:
    return algo.replace("epsilon-", "eps_").replace("-", "_")


def regret_figure(results: dict[str, dict[str, np.ndarray]], ctrs: np.ndarray):
    """Cumulative regret against rounds, and the share of pulls that went to the best ad."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for algo, r in results.items():
        t = np.arange(1, len(r["regret"]) + 1)
        ax1.plot(t, r["regret"], label=algo)
        ax2.plot(t, r["best_share"], label=algo)
    t = np.arange(1, len(next(iter(results.values()))["regret"]) + 1)
    ax1.plot(t, t * (ctrs.max() - ctrs.mean()), "k:", label="random ad")
    ax1.set(xlabel="round (ads shown)", ylabel="mean cumulative regret (clicks lost)",
            title="regret: lower is better")
    ax2.set(xlabel="round (ads shown)", ylabel="share of pulls on the best ad", ylim=(0, 1),
            title=f"best ad: #{int(np.argmax(ctrs))} (CTR {ctrs.max():.2f})")
    ax1.legend()
    ax2.legend(loc="lower right")
    return fig
