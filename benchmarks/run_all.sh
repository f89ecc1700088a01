#!/usr/bin/env bash
# Every benchmark of benchmarks/README.md, one command each, each writing its JSON here.
# Run from anywhere: benchmarks/run_all.sh          (20-25 min on 2 shared cores)
#                    QUICK=1 benchmarks/run_all.sh  (executor and recorder 10 s instead of 30/60 s,
#                                                   no halfcheetah APEX iteration: ~15 min)
#                    EXPERTS=1 benchmarks/run_all.sh  (also the paper's expert baselines on
#                                                   Fetch, Door and Humanoid Standup: hours)
# PY=/path/to/python overrides the venv's python (scripts/venv creates .venv on first use).
# Machine speed: every absolute time is read next to planner_halfcheetah_b100_t1.json's
# sim_ms_median (the physics of one planning step), measured first in the same run.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
py=${PY:-$(scripts/venv)}
apex_ros() { "$py" -m apex_ros.cli "$@"; }
quick=${QUICK:-0}
if [ "$quick" = 1 ]; then seconds_latency=10; seconds_record=10; else seconds_latency=30; seconds_record=60; fi
out=benchmarks

# Planner overhead (plan time / physics time) and thread scaling: halfcheetah, budget 100.
apex_ros bench planner --task halfcheetah_run --threads 1 --steps 100 --quiet --json $out/planner_halfcheetah_b100_t1.json
apex_ros bench planner --task halfcheetah_run --threads 2 --steps 100 --quiet --json $out/planner_halfcheetah_b100_t2.json
# APEX iteration time and its phases.
apex_ros bench apex --task cartpole_swingup --iterations 2 --quiet --json $out/apex_cartpole.json
if [ "$quick" != 1 ]; then
  apex_ros bench apex --task halfcheetah_run --iterations 1 --quiet --json $out/apex_halfcheetah_b100.json
fi
# The arm: the expert's success at reaching (20 MPC episodes of ur5e_reach).
apex_ros mpc --task ur5e_reach --episodes 20 --quiet --json $out/mpc_ur5e_reach.json
# Policy inference through the bundle (the committed halfcheetah bundle, MLP 17 -> 3x128 -> 6).
apex_ros bench inference --policy experiments/halfcheetah/run_160/policy.onnx --json $out/inference_halfcheetah.json
# One APEX iteration through the ROS graph (lockstep) vs in-process.
apex_ros bench graph --task cartpole_swingup --iterations 1 --quiet --json $out/graph_vs_inprocess_cartpole.json
# Executor at 500 Hz driven from a separate process: latency, rate, hold on a stopped stream;
# quiet and with a CPU-bound neighbour; against a plain rclpy echo node and at SCHED_FIFO 20.
"$py" benchmarks/executor_latency.py $out/executor_latency.json --duration $seconds_latency \
  --floor --priority 20 --robot-priority 30
# The same with the arm bundle and its goal input beside the halfcheetah one, alternating.
"$py" benchmarks/executor_latency.py $out/executor_latency_arm.json --duration $seconds_latency \
  --arm --neighbour off --repeats 2 --robot-priority 30
# The same with the browser view attached (its process; and a local headless chromium) vs without.
"$py" benchmarks/view_overhead.py $out/view_overhead.json --duration 10 --repeats 5
# Bags: recording /joint_states at 500 Hz; relabel throughput from a bag vs in-process.
"$py" benchmarks/record_500hz.py $out/record_500hz.json --seconds $seconds_record
"$py" benchmarks/bag_relabel_throughput.py $out/bag_relabel_throughput.json
# Scale-out: expert episodes and relabeled states per second in-process vs 1 and 2 Ray workers,
# Ray's overhead per episode; then the APEX iteration time projected to 8/32/128 cores.
"$py" benchmarks/ray_throughput.py $out/ray_throughput.json
"$py" benchmarks/apex_scaling_projection.py $out/apex_scaling_projection.json --ray-json $out/ray_throughput.json
# Fetch Pick&Place expert baselines against APEX Table 1 and the Fig. 3 effect (hours).
if [ "${EXPERTS:-0}" = 1 ]; then
  # Each of these continues an interrupted run of the same command (--resume).
  "$py" benchmarks/fetch_expert.py $out/fetch_expert_b100.json --episodes 40 --only task --resume
  "$py" benchmarks/fetch_expert.py $out/fetch_expert_b45.json --episodes 20 --config config/fetch_pick_and_place_b45.yaml --resume
  "$py" benchmarks/fetch_expert.py $out/fetch_expert_b45.json --episodes 40 --config config/fetch_pick_and_place_b45.yaml --only task --resume
  "$py" benchmarks/fetch_expert.py $out/fetch_fig3_b45.json --episodes 40 --config config/fetch_pick_and_place_b45.yaml --guide reach --resume
  # The unguided iCEM expert on Door and Humanoid Standup (returns, success, plan/physics time).
  "$py" benchmarks/expert_baseline.py $out/expert_adroit_door_b45.json --task adroit_door --episodes 20 --threads 1 --resume
  "$py" benchmarks/expert_baseline.py $out/expert_humanoid_standup_b100.json --task humanoid_standup --episodes 5 --threads 1 --resume
  "$py" benchmarks/expert_baseline.py $out/expert_humanoid_standup_b45.json --task humanoid_standup --budget 45 --set planner.iterations=2 --episodes 5 --threads 1 --resume
  apex_ros bench apex --task adroit_door --iterations 1 --threads 1 --set apex.expert_rollouts=1 --set apex.dagger_rollouts=1 --set task.episode_steps=20 --set apex.eval_episodes=1 --quiet --json $out/apex_adroit_door_probe.json
  apex_ros bench apex --task humanoid_standup --iterations 1 --threads 1 --set task.episode_steps=20 --quiet --json $out/apex_humanoid_standup_probe.json
fi
