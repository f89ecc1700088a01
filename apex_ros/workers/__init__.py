"""Where episodes run: in this process or on a Ray cluster (the config's `workers:` section).

config.py     WorkersConfig (backend local | ray, address, num_workers, threads_per_worker)
episodes.py   EpisodeWorker: a task, an expert planner with its rollout pool and the student,
              running expert / policy / DAgger / evaluation episodes and relabeling
ray_pool.py   RayPool: long-lived Ray actors, each an EpisodeWorker, and the fan-out of a
              batch of episodes over them (imports ray; only the ray backend loads it)
"""
