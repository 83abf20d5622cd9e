use super::*;

fn p(s: &str) -> Probability {
    s.parse().unwrap()
}

#[test]
fn probabilities_parse_as_percent_or_fraction() {
    assert_eq!(p("1%"), p("0.01"));
    assert_eq!(p(" 12.5 % "), p("0.125"));
    assert_eq!(p("0"), Probability::ZERO);
    assert_eq!(p("100%"), Probability::ONE);
    assert_eq!(p("1"), Probability::ONE);
}

#[test]
fn bad_probabilities_name_the_input() {
    let err = |s: &str| s.parse::<Probability>().unwrap_err();
    assert_eq!(err("10"), ProbabilityError::OutOfRange("10".into()));
    assert_eq!(err("101%"), ProbabilityError::OutOfRange("101%".into()));
    assert_eq!(err("-1%"), ProbabilityError::OutOfRange("-1%".into()));
    assert_eq!(err("lots"), ProbabilityError::NotANumber("lots".into()));
    assert_eq!(err("NaN"), ProbabilityError::NotANumber("NaN".into()));
    assert_eq!(err("%"), ProbabilityError::NotANumber("%".into()));
}

#[test]
fn probabilities_display_as_one_percentage_form() {
    assert_eq!(p("0.01").to_string(), "1%");
    assert_eq!(p("0.07").to_string(), "7%");
    assert_eq!(p("0.005").to_string(), "0.5%");
    assert_eq!(p("0").to_string(), "0%");
    assert_eq!(p("1").to_string(), "100%");
    assert_eq!(p("33.3333%").to_string(), "33.3333%");
}

const N: usize = 100_000;

fn decisions(config: ImpairmentConfig, seed: u64) -> Vec<Decision> {
    let mut model = Impairment::new(config, seed);
    (0..N).map(|_| model.decide(1000)).collect()
}

fn share(decisions: &[Decision], pick: impl Fn(&Decision) -> bool) -> f64 {
    decisions.iter().filter(|d| pick(d)).count() as f64 / decisions.len() as f64
}

#[test]
fn independent_rates_are_within_three_tenths_of_a_point() {
    for rate in ["1%", "10%", "30%", "50%"] {
        let config = ImpairmentConfig {
            loss: LossModel::Independent { rate: p(rate) },
            duplicate: p(rate),
            corrupt: p(rate),
            reorder: p(rate),
            ..Default::default()
        };
        let d = decisions(config, 7);
        let expected = p(rate).fraction();
        for (what, measured) in [
            ("loss", share(&d, |d| d.lost)),
            ("duplicate", share(&d, |d| d.duplicate)),
            ("corrupt", share(&d, |d| d.corrupt_bit.is_some())),
            ("reorder", share(&d, |d| d.hold_back)),
        ] {
            assert!((measured - expected).abs() <= 0.003, "{what} at {rate}: measured {measured}");
        }
    }
}

#[test]
fn zero_and_one_are_exact() {
    assert!(decisions(ImpairmentConfig::loss(p("0%")), 1).iter().all(|d| *d == Decision::PASS));
    assert!(decisions(ImpairmentConfig::loss(p("100%")), 1).iter().all(|d| d.lost));
}

#[test]
fn the_same_seed_gives_the_same_decisions() {
    let config = ImpairmentConfig {
        loss: "2%,30%".parse().unwrap(),
        jitter: Duration::from_millis(5),
        corrupt: p("5%"),
        ..Default::default()
    };
    assert_eq!(decisions(config, 42), decisions(config, 42));
    assert_ne!(decisions(config, 42), decisions(config, 43));
}

#[test]
fn one_feature_does_not_shift_another() {
    let dup = ImpairmentConfig { duplicate: p("20%"), ..Default::default() };
    let dup_and_loss = ImpairmentConfig { loss: LossModel::Independent { rate: p("50%") }, ..dup };
    let duplicates = |c| decisions(c, 3).iter().map(|d| d.duplicate).collect::<Vec<_>>();
    assert_eq!(duplicates(dup), duplicates(dup_and_loss));
}

/// Lengths of the runs of consecutive losses.
fn bursts(d: &[Decision]) -> Vec<usize> {
    d.split(|d| !d.lost).map(<[_]>::len).filter(|&n| n > 0).collect()
}

#[test]
fn gilbert_elliott_matches_its_formulas_within_ten_percent() {
    // Classic Gilbert: all lost in the bad state, none in the good one, so
    // a burst is a stay in the bad state: mean length 1/r.
    for (model, burst) in [("1%,25%", 4.0), ("0.5%,50%", 2.0), ("2%,10%", 10.0)] {
        let loss: LossModel = model.parse().unwrap();
        let d = decisions(ImpairmentConfig { loss, ..Default::default() }, 11);
        let (measured, expected) = (share(&d, |d| d.lost), loss.mean_loss());
        assert!((measured / expected - 1.0).abs() <= 0.10, "{model}: loss {measured} vs {expected}");
        let runs = bursts(&d);
        let mean_burst = runs.iter().sum::<usize>() as f64 / runs.len() as f64;
        assert_eq!(loss.mean_bad_period(), Some(burst));
        assert!((mean_burst / burst - 1.0).abs() <= 0.10, "{model}: bursts {mean_burst} vs {burst}");
    }
    // Elliott's generalisation: some loss in both states.
    let loss: LossModel = "5%,20%,60%,2%".parse().unwrap();
    let d = decisions(ImpairmentConfig { loss, ..Default::default() }, 5);
    let (measured, expected) = (share(&d, |d| d.lost), loss.mean_loss());
    assert!((measured / expected - 1.0).abs() <= 0.10, "loss {measured} vs {expected}");
}

#[test]
fn burst_models_parse_with_defaults() {
    let full: LossModel = "1%,25%,90%,1%".parse().unwrap();
    let short: LossModel = "1%,25%".parse().unwrap();
    assert_eq!(
        short,
        LossModel::GilbertElliott {
            enter_bad: p("1%"),
            leave_bad: p("25%"),
            loss_bad: Probability::ONE,
            loss_good: Probability::ZERO
        }
    );
    assert_ne!(full, short);
    assert!(matches!("1%".parse::<LossModel>(), Err(GilbertElliottError::Shape(_))));
    assert!(matches!("1%,2%,3%,4%,5%".parse::<LossModel>(), Err(GilbertElliottError::Shape(_))));
    assert!(matches!("1%,x".parse::<LossModel>(), Err(GilbertElliottError::Probability(_))));
    assert_eq!(
        short.to_string(),
        "bursty loss p=1% r=25% bad=100% good=0% (mean 3.846%, bad periods of 4.0 datagrams)"
    );
}

#[test]
fn delays_stay_within_the_jitter_bounds() {
    let (delay, jitter) = (Duration::from_millis(20), Duration::from_millis(5));
    let d = decisions(ImpairmentConfig { delay, jitter, ..Default::default() }, 9);
    assert!(d.iter().all(|d| d.delay >= delay - jitter && d.delay <= delay + jitter));
    let mean = d.iter().map(|d| d.delay).sum::<Duration>() / N as u32;
    assert!(mean.abs_diff(delay) < Duration::from_micros(100), "mean {mean:?}");
    // Jitter larger than the delay is cut at zero, never negative.
    let d = decisions(ImpairmentConfig { delay: jitter, jitter: delay, ..Default::default() }, 9);
    assert!(d.iter().any(|d| d.delay.is_zero()));
}

#[test]
fn corruption_picks_a_bit_inside_the_datagram() {
    let mut model = Impairment::new(ImpairmentConfig { corrupt: Probability::ONE, ..Default::default() }, 1);
    for len in [1usize, 2, 1400] {
        for _ in 0..1000 {
            assert!(model.decide(len).corrupt_bit.is_some_and(|b| b < len * 8));
        }
    }
    assert_eq!(model.decide(0).corrupt_bit, None, "nothing to flip in an empty datagram");
}

#[test]
fn transparency_is_recognised() {
    assert!(ImpairmentConfig::default().is_transparent());
    assert!(!ImpairmentConfig::loss(p("1%")).is_transparent());
    assert!(!ImpairmentConfig { loss: "0%,10%,50%".parse().unwrap(), ..Default::default() }.is_transparent());
    assert_eq!(ImpairmentConfig::default().to_string(), "no impairment");
}
