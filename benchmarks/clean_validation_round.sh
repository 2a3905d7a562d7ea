#!/usr/bin/env bash
# One session's round of the clean validation, run from the pinned commit (benchmarks/results/clean-validation/PINNED)
# however far main has moved. The tasks and weights do not fit one device call (64 MiB), so a round is several
# back-to-back calls on one warm machine: each carries a part of the data, the first starts a driver that outlives
# the calls (setsid), and every call waits, reports progress and returns the records so far.
#
# Here, before the calls (fills the ignored .device*/ folders; prints what each call carries):
#   bash benchmarks/clean_validation_round.sh pack    # the splits of the steps not done yet (STEPS_DONE), in order
# Each device call (carry: the folder `pack` named for it), as many as the session's device time allows:
#   bash benchmarks/clean_validation_round.sh serve 540
# (a call returns soon after its SECONDS; the last may take the whole budget left: a call cut off by the
# budget still returns the results.tgz of its last look (every CV_NAP s); then give_back)
# When other GPU work follows on the same machine (a timing that wants the GPU to itself), that call starts with
#   bash benchmarks/clean_validation_round.sh stop && ...
# which ends the driver and its runs (the runs in flight are lost: the next round makes them again) and returns
# the records so far, as serve does; a `serve` after it on the same machine starts the driver again.
# Then, here, take the calls' archives in, in order, and commit what they changed (records, rates, STEPS_DONE,
# logs):
#   bash benchmarks/clean_validation_round.sh import <files_at of call 1>/results.tgz <of call 2>/results.tgz ...
# (it checks every record was made at the pin, unpacks over benchmarks/results/ and copies a finished tuning's
# rates, results/clean-validation/clean_*_lrs.yaml, to configs/, which `pack` refuses to go on without). The last
# call's archive holds everything its machine made; the earlier ones matter when a machine went back between
# calls: the next one starts from the committed records and would not return the earlier machine's.
#
# The driver runs the issue's order: tune clean_validation.yaml -> sweep it -> report -> tune clean_ranks.yaml ->
# sweep it -> the final report. A step runs on the tasks whose splits have arrived and is finished (rates
# written, report made) once all of its tasks have, then named in results/clean-validation/STEPS_DONE, which
# later rounds skip; every step resumes from the records on file, and a killed run is made again. Data and
# weights sit at fixed paths, because both are part of what the rates were tuned for.
set -uo pipefail
A=${CV_ROOT:-/tmp/cv}                        # the fixed place of code, data, weights and cache on the device
NAP=${CV_NAP:-30}                            # seconds between looks (CV_ROOT and CV_NAP: for the tests)
WEIGHTS=vit_small_patch14_dinov2.imgfocus_fp16.safetensors
D="data.root=$A/vtab-1k model.file=$A/$WEIGHTS data.cache_dir=$A/cache"
FIVE=(cifar10 pacs_photo pacs_art_painting pacs_cartoon pacs_sketch)
TWO=(cifar10 pacs_sketch)
STEPS=(tune_cv sweep_cv tune_cr sweep_cr)    # in the driver's order
DONE=results/clean-validation/STEPS_DONE     # the steps finished, under the results' parent (here: benchmarks/)
TUNE_SPLITS="train800 val200" TEST_SPLITS="train800val200 test"
RESULTS=(clean-validation clean-validation-tune)
here=$(cd "$(dirname "$0")/.." && pwd)
pin() { sed -n 's/^commit: *//p' "$here/benchmarks/results/clean-validation/PINNED"; }

steps_left() {  # steps_left DONE_FILE: the steps it does not name, each after a space
  local s; for s in "${STEPS[@]}"; do grep -qsx "$s" "$1" || echo -n " $s"; done
}

ok_records() {  # ok_records RECORD...: how many of the run records are ok
  cat "$@" 2>/dev/null | grep -c '"status": "ok"'
}

rates_not_in_configs() {  # STEP:FILE of each finished tuning whose rates (FILE, under benchmarks/results/) are not
  local step                # in configs/ (a finished tuning's rates are what later steps read)
  for step in tune_cv:clean_validation tune_cr:clean_ranks; do
    local wrote=benchmarks/results/clean-validation/${step#*:}_lrs.yaml
    grep -qsx "${step%%:*}" "benchmarks/$DONE" && ! cmp -s "$wrote" "configs/${step#*:}_lrs.yaml" &&
      echo "${step%%:*}:$wrote"
  done
}

pack_split() {  # pack_split OUT_DIR TASK SPLIT...: the task's list files and the named splits' images, one .tgz
  local out=$here/$1 task=$2; shift 2
  local images=(); for s in "$@"; do images+=("$task/images/$s"); done
  (cd "${SHARED:-$here/../shared}/data/vtab-1k" &&
     tar czf "$out/$task.$(IFS=-; echo "$*").tgz" "$task"/*.txt "${images[@]}") || exit 1
}

pack() {  # call 1 carries the pinned code, wheels and weights; the splits of the steps not done yet fill the calls
  cd "$here"
  local done_file=benchmarks/$DONE stale
  for stale in $(rates_not_in_configs); do
    local wrote=${stale#*:}
    echo "${stale%%:*} is done but configs/${wrote##*/} is not the rates it wrote: cp $wrote configs/ and commit" >&2
    exit 2
  done
  local left; left=$(steps_left "$done_file")
  [ -n "$left" ] || { echo "every step is done ($done_file)" >&2; exit 2; }
  rm -rf .device .device-[0-9] .device-stage && "${SHARED:-../shared}/tools/device-pack" > /dev/null
  git archive --format=tar.gz -o .device/pinned.tgz "$(pin)" aurora_vision benchmarks configs tests pyproject.toml
  # one .tgz per task and kind of split, keyed "step finished size" for the order below; a split two steps
  # need goes once, with the first
  mkdir -p .device-stage && local keys=() rank=0
  for step in tune_cv:tune:FIVE sweep_cv:test:FIVE tune_cr:tune:TWO sweep_cr:test:TWO; do
    local name=${step%%:*} kind=${step#*:} splits folder; kind=${kind%%:*}
    local -n tasks=${step##*:}
    rank=$((rank + 1))
    grep -qsx "$name" "$done_file" && continue
    case "$kind" in tune) splits=$TUNE_SPLITS folder=clean-validation-tune ;;
                    test) splits=$TEST_SPLITS folder=clean-validation ;; esac
    for t in "${tasks[@]}"; do
      local f; f=.device-stage/$t.$(echo $splits | tr ' ' -).tgz
      [ -e "$f" ] && continue
      pack_split .device-stage "$t" $splits
      keys+=("$rank $(ok_records benchmarks/results/$folder/runs/${t}__*.json) $(stat -c %s "$f") $f")
    done
  done
  # a call carries 64 MiB with the working tree (tracked and untracked files not ignored; it grows by each
  # round's records); 1 MB kept spare
  local tree; tree=$(git ls-files -co --exclude-standard -z | du -cb --apparent-size --files0-from=- 2>/dev/null |
                     tail -1 | cut -f1)
  local room=$(( 64 * 1048576 - tree - 1000000 ))
  local rooms=($(( room - $(du -sb --apparent-size .device | cut -f1) )))
  # first fit in the steps' order, within a step the tasks with the fewest finished runs first (largest first
  # among equals): each call's driver then starts on work left to do, not on tasks an earlier round finished
  for f in $(printf '%s\n' "${keys[@]}" | sort -k1,1n -k2,2n -k3,3nr | cut -d' ' -f4); do
    local size i=0; size=$(stat -c %s "$f")
    while [ $i -lt ${#rooms[@]} ] && [ "$size" -gt "${rooms[$i]}" ]; do i=$((i + 1)); done
    [ $i -eq ${#rooms[@]} ] && rooms+=("$room")
    local dir=.device; [ $i -gt 0 ] && dir=.device-$((i + 1)) && mkdir -p "$dir"
    mv "$f" "$dir/" && rooms[$i]=$(( rooms[i] - size ))
  done
  rmdir .device-stage
  for d in .device .device-[0-9]; do
    [ -d "$d" ] && echo "call carrying [\"$d\"]: $(du -sh --apparent-size "$d" | cut -f1):" \
      "$(cd "$d" && ls *.tgz | grep -v pinned | sed 's/.tgz$//' | tr '\n' ' ')"
  done
  echo "plus the working tree: $tree bytes; steps left:$left"
}

present() {  # present SPLIT SPLIT TASK...: the tasks whose two splits have arrived, as a YAML list
  local a=$1 b=$2 out=""; shift 2
  for t in "$@"; do [ -e "$A/vtab-1k/$t/.has-$a" ] && [ -e "$A/vtab-1k/$t/.has-$b" ] && out="$out$t,"; done
  echo "[${out%,}]"
}

quote_hashes() {  # quote_hashes RATES: the pin's tune writes a fingerprint hash such as 1518767248e9 unquoted, and
  # its own loader reads that back as a float, refusing the rate as stale; quoted it stays the string it was
  # (main's config.dump_yaml writes it quoted)
  [ ! -e "$1" ] || sed -i -E "s/^( +(grid|protocol|recipe): )([0-9]+[eE][0-9]+)$/\1'\3'/" "$1"
}

step() {  # step NAME SPLIT SPLIT "TASK..." FINISH SUBSET: run SUBSET on the tasks present until all are, then FINISH
  # Exit 1 is the runner's "some runs failed" (each record says why): the step stays unfinished, the next steps
  # go on, and the next round's finish retries those runs. Any other failure stops the driver.
  local name=$1 a=$2 b=$3 tasks=($4) finish=$5 subset=$6 done_file=$A/code/$DONE rc
  grep -qsx "$name" "$done_file" && return 0
  local all; all="[$(IFS=,; echo "${tasks[*]}")]"
  while :; do
    local have; have=$(present "$a" "$b" "${tasks[@]}")
    echo "$(date +%T) == $name on $have"
    if [ "$have" = "$all" ]; then
      eval "$finish"; rc=$?
      [ $rc -eq 0 ] && echo "$name" >> "$done_file" && return 0
      [ $rc -eq 1 ] && { echo "$(date +%T) == $name: some runs failed (their records say why); going on"; return 0; }
      echo "$(date +%T) == $name failed (exit $rc); stopping"; return 1
    fi
    if [ "$have" != "[]" ]; then
      eval "$subset"; rc=$?
      [ $rc -gt 1 ] && { echo "$(date +%T) == $name on $have failed (exit $rc); stopping"; return 1; }
    fi
    # the rest of its data comes with a later call; data that came while the subset ran is taken at once
    [ "$(present "$a" "$b" "${tasks[@]}")" = "$have" ] && sleep "$NAP"
  done
}

driver() {
  cd "$A/code" || exit 1
  export PYTHONPATH=$A/site:$A/code PYTHONUNBUFFERED=1 AURORA_VISION_GIT_COMMIT=$(cat "$A/commit")
  local bench="python3 -m aurora_bench.cli" ex="--gpus all --workers ${WORKERS:-3} --quiet"
  if [ ! -e "$A/code/results/clean-validation/gpu_tests.log" ]; then  # once per pin: the default path's GPU tests
    python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graph.py tests/test_layers.py \
      tests/test_triton_kernels.py > "$A/code/results/clean-validation/gpu_tests.log" 2>&1 &
  fi
  local cv=configs/clean_validation.yaml cr=configs/clean_ranks.yaml
  # a sweep's finish retries failed runs (once a round) and reports whatever their outcome; it keeps the exit.
  # A sweep on a subset of tasks keeps the fingerprint by naming all the tuning tasks (tune.tasks) explicitly.
  local report="r=\$?; $bench report results/clean-validation || r=2; (exit \$r)"
  local quote_cr="r=\$?; quote_hashes configs/clean_ranks_lrs.yaml; (exit \$r)"
  step tune_cv $TUNE_SPLITS "${FIVE[*]}" \
    "$bench tune $cv --write configs/clean_validation_lrs.yaml $ex --set $D" \
    "$bench tune $cv $ex --set $D \"tasks=\$have\"" || return
  step sweep_cv $TEST_SPLITS "${FIVE[*]}" \
    "$bench sweep $cv --retry-failed $ex --no-report --set $D; $report" \
    "$bench sweep $cv $ex --no-report --set $D \"tasks=\$have\" \"tune.tasks=[$(IFS=,; echo "${FIVE[*]}")]\"" || return
  step tune_cr $TUNE_SPLITS "${TWO[*]}" \
    "$bench tune $cr --write configs/clean_ranks_lrs.yaml $ex --set $D; $quote_cr" \
    "$bench tune $cr $ex --set $D \"tasks=\$have\"" || return
  step sweep_cr $TEST_SPLITS "${TWO[*]}" \
    "$bench sweep $cr --retry-failed $ex --no-report --set $D; $report" \
    "$bench sweep $cr $ex --no-report --set $D \"tasks=\$have\" \"tune.tasks=[$(IFS=,; echo "${TWO[*]}")]\"" || return
  local left; left=$(steps_left "$DONE")
  if [ -z "$left" ]; then echo "$(date +%T) == all done"
  else echo "$(date +%T) == driver stopping with steps unfinished:$left (failed runs; the next round retries them)"; fi
}

unpack_data() {  # each carried split appears whole (unpacked aside, then moved) and is marked as arrived
  for f in .device*/*.*.tgz; do
    [ -e "$f" ] || continue
    local name task splits; name=$(basename "$f" .tgz); task=${name%%.*}; splits=${name#*.}
    [ -e "$A/vtab-1k/$task/.has-${splits%%-*}" ] && continue
    rm -rf "$A/in" && mkdir -p "$A/in" "$A/vtab-1k/$task/images" && tar xzf "$f" -C "$A/in" || continue
    local l s ok=1
    for l in "$A/in/$task"/*.txt; do  # lists a running run may be reading are never rewritten (the same lists)
      [ -e "$A/vtab-1k/$task/${l##*/}" ] || cp "$l" "$A/vtab-1k/$task/" || ok=0
    done
    for s in ${splits//-/ }; do  # a split left half-moved by a killed call is replaced whole
      rm -rf "$A/vtab-1k/$task/images/$s" && mv "$A/in/$task/images/$s" "$A/vtab-1k/$task/images/" || ok=0
    done
    [ $ok = 1 ] && for s in ${splits//-/ }; do touch "$A/vtab-1k/$task/.has-$s"; done
  done
}

start_driver() {  # in its own process group (setsid), which outlives the call and which stop ends whole
  setsid nohup bash "$A/round.sh" driver >> "$A/logs/driver.log" 2>&1 < /dev/null &
  echo $! > "$A/driver.pid"
}

serve() {  # one device call: set up once, take what this call carried, start the driver once, wait, report
  : "${OUT:?set OUT: the folder this call returns}"
  local deadline=$(( $(date +%s) + ${1:-540} ))
  mkdir -p "$A/vtab-1k" "$A/logs" "$OUT"
  [ -d "$A/site" ] || python3 -m pip install -q --no-index --no-deps --target "$A/site" .device/whl/*.whl
  [ -e "$A/$WEIGHTS" ] || cp ".device/$WEIGHTS" "$A/"
  unpack_data
  if [ ! -d "$A/code" ]; then
    [ -e .device/pinned.tgz ] || { echo "the first call carries .device (pinned code, wheels, weights)"; exit 2; }
    mkdir -p "$A/code" && tar xzf .device/pinned.tgz -C "$A/code"
    mkdir -p "$A/site" && ln -sfn "$A/code/benchmarks" "$A/site/aurora_bench"  # the runner's installed name
    pin > "$A/commit"
    for r in "${RESULTS[@]}"; do  # the records so far: every step resumes from them
      mkdir -p "$A/code/results/$r" && cp -r "benchmarks/results/$r/." "$A/code/results/$r/" 2>/dev/null
    done
    cp configs/clean_validation_lrs.yaml configs/clean_ranks_lrs.yaml "$A/code/configs/"  # rates committed so far
    cp "$here/benchmarks/clean_validation_round.sh" "$A/round.sh"  # a later call rewrites the tree's copy
    date -u +%Y%m%d-%H%M > "$A/started"  # names this round's driver log
    start_driver
  elif ! kill -0 "$(cat "$A/driver.pid")" 2>/dev/null && tail -n 1 "$A/logs/driver.log" | grep -q "stopped by 'stop'"; then
    # a `stop` on this machine handed the GPU to something else: go on where it stopped (the steps resume)
    echo "$(date +%T) == started again after 'stop'" >> "$A/logs/driver.log"
    wc -l < "$A/logs/driver.log" > "$A/log_from"  # the wait below reads this driver's lines, not the last one's
    start_driver
  fi
  while [ "$(date +%s)" -lt "$deadline" ] \
      && ! tail -n "+$(( $(cat "$A/log_from" 2>/dev/null || echo 0) + 1 ))" "$A/logs/driver.log" | grep -q "all done\|stopping"; do
    kill -0 "$(cat "$A/driver.pid")" 2>/dev/null || { echo "the driver is not running: see its log"; break; }
    sleep "$NAP"
    echo "$(date +%T) records: $(ok_records "$A"/code/results/clean-validation*/runs/*.json) ok;" \
      "GPU $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader)"
    snapshot  # a call cut off by the device budget still returns what was made up to its last look
  done
  tail -n 15 "$A/logs/driver.log"
  snapshot
}

stop() {  # end the driver and every run it started (one process group: setsid), then return the records so far
  : "${OUT:?set OUT: the folder this call returns}"
  local pid i said; pid=$(cat "$A/driver.pid" 2>/dev/null) || { echo "stop: no driver was started on this machine" >&2; exit 2; }
  local running=0; kill -0 "$pid" 2>/dev/null && running=1  # the driver itself, not what it left behind
  if kill -TERM -- "-$pid" 2>/dev/null; then  # the group: the driver, its runs, its GPU tests
    for ((i = 0; i < 20; i++)); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null  # a run that ignored TERM for 10 s; a killed run is made again next round
  fi
  if [ $running = 1 ]; then  # the marker a later serve starts the driver again on
    echo "$(date +%T) == stopped by 'stop': the runs in flight are made again next round" >> "$A/logs/driver.log"
    said="driver stopped"
  else  # it had ended (all done, or stopping on an error): a later serve leaves it so
    said="the driver had already ended"
  fi
  mkdir -p "$OUT" && snapshot
  echo "$said; records: $(ok_records "$A"/code/results/clean-validation*/runs/*.json) ok"
}

snapshot() {  # $OUT/results.tgz: the records, rates files and driver log so far (replaced whole, never half-written)
  cp "$A"/code/configs/clean_*_lrs.yaml "$A/code/results/clean-validation/" 2>/dev/null
  cp "$A/logs/driver.log" "$A/code/results/clean-validation/driver-$(cat "$A/started").log"
  # tar's exit 1 is "a file changed as we read it" (a record landing): the archive is whole all the same
  (cd "$A/code/results" &&
   tar czf "$OUT/results.tgz.part" --exclude='*/tb' --exclude='*/.locks' --exclude='*/runs/.*' "${RESULTS[@]}"
   [ $? -le 1 ]) && mv "$OUT/results.tgz.part" "$OUT/results.tgz"
}

# import ARCHIVE...: serve calls' results.tgz, in order, over benchmarks/results/, and a finished tuning's rates
# into configs/. All are checked first: one that is not a round's results, or holds a record not from the pin,
# refuses the whole import.
import_results() {
  cd "$here"
  local stage archive n=0 i p; p=$(pin)
  stage=$(mktemp -d) && trap "rm -rf '$stage'" EXIT  # expanded now: the trap runs after return
  [ $# -gt 0 ] || { echo "import: name the results.tgz of each serve call (<files_at>/results.tgz), in order" >&2; exit 2; }
  for archive in "$@"; do
    n=$((n + 1)) && mkdir "$stage/$n"
    [ -f "$archive" ] || { echo "import: no archive at '$archive': name the results.tgz a serve call returned" \
                                 "(<files_at>/results.tgz)" >&2; exit 2; }
    tar xzf "$archive" -C "$stage/$n" || { echo "import: $archive is not a readable .tgz" >&2; exit 2; }
    local top other
    for top in "$stage/$n"/* "$stage/$n"/.[!.]*; do
      [ -e "$top" ] || continue
      [[ " ${RESULTS[*]} " == *" ${top##*/} "* ]] && continue
      echo "import: $archive holds ${top##*/}, not a round's results (${RESULTS[*]}): nothing imported" >&2; exit 2
    done
    other=$(grep -L "\"commit\": \"$p\"" "$stage/$n"/*/runs/*.json 2>/dev/null | sed "s#^$stage/$n/##")
    [ -z "$other" ] || { echo "import: $archive has records not made at the pin $p (one report, one commit):" \
                                "nothing imported:" $other >&2; exit 2; }
  done
  for ((i = 1; i <= n; i++)); do cp -r "$stage/$i"/. benchmarks/results/ || exit 1; done
  local stale r
  for stale in $(rates_not_in_configs); do
    cp "${stale#*:}" configs/ && echo "${stale%%:*} is done: its rates copied to configs/${stale##*/}"
  done
  for r in "${RESULTS[@]}"; do
    echo "$r: $(ok_records benchmarks/results/$r/runs/*.json) ok records"
  done
  echo "steps done:$(grep -s . "benchmarks/$DONE" | sed 's/^/ /' | tr -d '\n'); steps left:$(steps_left "benchmarks/$DONE")"
}

case "${1:-}" in
  pack) pack ;;
  import) shift; import_results "$@" ;;
  serve) serve "${2:-540}" ;;
  stop) stop ;;
  driver) driver ;;
  *) echo "usage: $0 pack | serve [SECONDS] | stop | import RESULTS_TGZ..." >&2; exit 2 ;;
esac
